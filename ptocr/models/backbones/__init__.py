"""Backbones; importing a module registers its classes."""

from ptocr.models.backbones import mobilenetv3, pplcnetv3  # noqa: F401
