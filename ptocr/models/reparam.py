"""Structural re-parameterization, by protocol.

Some layers train as several parallel branches (MobileOne / RepVGG style: kxk, 1x1 and
identity conv-BN branches, learnable affines) that compute, once trained, what one plain conv
computes. Such a layer says so through methods, and the generic passes here find it by those
methods alone, so a new re-parameterizable family needs no change to the passes nor to their
callers (loading, ``ptocr.optimize``, conversion):

* ``Reparameterizable.reparameterize()``: fuse the branches into the inference structure, in
  place; outputs unchanged (to rounding), parameter names those of the inference programs;
  a second call does nothing. ``fuse_reparameterizable(model)`` calls it on every module.
* ``HasInferenceForm.inference_form()``: a module for inference only that computes the same
  function with fewer ops, which may take over (and change) this module's weights, or None
  where there is none (e.g. before fusing). ``install_inference_forms(model)`` puts it in the
  layer's place; ``ptocr.optimize`` does that after fusing.

A whole network that wants a ``rep()`` shortcut calls ``fuse_reparameterizable(self)`` rather
than defining ``reparameterize`` itself (the pass would call it again from inside).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn as nn

__all__ = ["Reparameterizable", "HasInferenceForm", "fuse_reparameterizable", "install_inference_forms",
           "replace_submodule"]


@runtime_checkable
class Reparameterizable(Protocol):
    def reparameterize(self) -> None:
        """Fuse the training-time branches in place; outputs unchanged; idempotent."""


@runtime_checkable
class HasInferenceForm(Protocol):
    def inference_form(self) -> nn.Module | None:
        """An inference-only module computing this one's function, or None."""


def fuse_reparameterizable(model: nn.Module) -> nn.Module:
    """Fuse every re-parameterizable module inside ``model`` (any wrapper, e.g. ``OCRModel``), in
    place, outermost first; returns ``model``."""
    with torch.no_grad():
        for m in list(model.modules()):
            if isinstance(m, Reparameterizable):
                m.reparameterize()
    return model


def replace_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` at the dotted path ``name`` inside ``model`` (in place)."""
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, new)


def install_inference_forms(model: nn.Module) -> int:
    """Replace (in place) every module below ``model`` that has an inference form by that form,
    outermost first (modules inside a replaced one are not visited); returns how many."""
    replaced: list[str] = []
    with torch.no_grad():
        for name, m in list(model.named_modules()):
            if not name or any(name.startswith(r + ".") for r in replaced):
                continue
            if isinstance(m, HasInferenceForm):
                new = m.inference_form()
                if new is not None:
                    replace_submodule(model, name, new)
                    replaced.append(name)
    return len(replaced)
