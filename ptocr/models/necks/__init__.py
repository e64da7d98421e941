"""Necks; importing a module registers its classes."""

from ptocr.models.necks import rsefpn, svtr  # noqa: F401
