"""Heads; importing a module registers its classes."""

from ptocr.models.heads import cls_head, ctc_head, db_head  # noqa: F401
