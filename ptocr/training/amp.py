"""PaddleOCR's mixed-precision training (``Global.use_amp``) in PyTorch terms.

What tools/train.py and tools/program.py do with ``use_amp: true``: the forward runs under
``paddle.amp.auto_cast(level=amp_level, dtype=amp_dtype)``, its outputs are cast back to
float32 (``to_float32``) before the loss, and a ``paddle.amp.GradScaler(init_loss_scaling=scale_loss,
use_dynamic_loss_scaling=...)`` scales the loss, unscales the gradients and skips the update
where one is not finite; the LR schedule steps either way. Evaluation's forward runs under the
same auto-cast. Here: ``torch.autocast`` on the training device, ``torch.amp.GradScaler`` with
Paddle's growth settings (x2 after 1000 finite steps, x0.5 on a non-finite one), gradient
clipping on the unscaled gradients (Paddle clips inside the update, after unscaling).

Where the two differ (doc/training.md): Paddle's default level O2 casts the weights to float16
and keeps float32 master copies; PyTorch's autocast keeps float32 weights and runs each op in
the dtype its op lists give (Paddle's O1). Both levels run as autocast here, with one log line
for O2. Paddle halves a dynamic scale after 2 non-finite steps in a row, PyTorch after each.
``amp_custom_black_list`` / ``amp_custom_white_list`` name Paddle ops and are refused unless empty.
The scaler's state is not in a checkpoint (PaddleOCR does not save it either): a resumed
run starts again from ``scale_loss``.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass

import torch

from ptocr.errors import PtocrError

__all__ = ["MixedPrecision", "AMP_DTYPES", "AMP_LEVELS", "to_float32"]

log = logging.getLogger("ptocr.training")

AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
AMP_LEVELS = ("O1", "O2")
# paddle.amp.GradScaler's defaults: incr_every_n_steps, incr_ratio, decr_ratio
_GROWTH_INTERVAL, _GROWTH, _BACKOFF = 1000, 2.0, 0.5


@dataclass(frozen=True)
class MixedPrecision:
    """Global's AMP settings: off by default (``enabled=False`` runs the plain float32 step)."""

    enabled: bool = False
    dtype: torch.dtype = torch.float16
    level: str = "O2"
    scale: float = 1.0
    dynamic: bool = False

    @classmethod
    def from_global(cls, glob: dict) -> MixedPrecision:
        """From a Global section (PaddleOCR's defaults for what it leaves out); bad values refused."""
        use = glob.get("use_amp", False)
        if use not in (None, True, False):
            raise PtocrError(f"Global.use_amp={use!r}: true or false")
        name = glob.get("amp_dtype") or "float16"
        if name not in AMP_DTYPES:
            raise PtocrError(f"Global.amp_dtype={name!r}: one of {', '.join(AMP_DTYPES)}")
        level = glob.get("amp_level") or "O2"
        if level not in AMP_LEVELS:
            raise PtocrError(f"Global.amp_level={level!r}: one of {', '.join(AMP_LEVELS)}")
        scale = glob.get("scale_loss", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < float("inf"):
            raise PtocrError(f"Global.scale_loss={scale!r}: a positive number (e.g. 1024.0)")
        dynamic = glob.get("use_dynamic_loss_scaling", False)
        if dynamic not in (None, True, False):
            raise PtocrError(f"Global.use_dynamic_loss_scaling={dynamic!r}: true or false")
        for key in ("amp_custom_black_list", "amp_custom_white_list"):
            if glob.get(key):
                raise PtocrError(f"Global.{key}={glob[key]!r}: Paddle op names, which PyTorch's autocast does not "
                                 "take (leave it empty: autocast's own op lists decide)")
        return cls(bool(use), AMP_DTYPES[name], level, float(scale), bool(dynamic))

    def describe(self) -> str:
        if not self.enabled:
            return "float32"
        scaling = "dynamic" if self.dynamic else "static"
        return f"autocast {str(self.dtype).removeprefix('torch.')} (amp_level {self.level}), {scaling} loss scale {self.scale:g}"

    def autocast(self, device: torch.device):
        """The context the forward runs in: ``torch.autocast`` on ``device``, or nothing."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(device).type, dtype=self.dtype)

    def scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        """PaddleOCR's GradScaler for a run (None where AMP is off); O2 said once in the log."""
        if not self.enabled:
            return None
        if self.level == "O2":
            log.info("Global.amp_level O2 runs as PyTorch autocast: float32 weights, each op in %s or float32 "
                     "by autocast's op lists (Paddle's O2 keeps float16 weights with float32 master copies)",
                     str(self.dtype).removeprefix("torch."))
        return torch.amp.GradScaler(torch.device(device).type, init_scale=self.scale, growth_factor=_GROWTH,
                                    backoff_factor=_BACKOFF, growth_interval=_GROWTH_INTERVAL)

    def backward_and_step(self, loss: torch.Tensor, recipe, scaler: torch.amp.GradScaler | None) -> None:
        """Backward and the recipe's update (clip, optimizer, LR schedule); with a scaler, the
        scaled loss's backward and an update skipped where a gradient is not finite."""
        if scaler is None:
            loss.backward()
            recipe.step()
            return
        scaler.scale(loss).backward()
        scaler.unscale_(recipe.optimizer)
        recipe.clip_grad()
        before = scaler.get_scale()
        scaler.step(recipe.optimizer)  # skipped where unscale_ found an inf or nan
        # a static scale stays what Global.scale_loss says (update(new_scale) resets the step's state)
        scaler.update() if self.dynamic else scaler.update(new_scale=before)
        with warnings.catch_warnings():  # PaddleOCR steps the LR whether or not the update ran, which
            # PyTorch takes for a mistake when the first update is the one skipped
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            recipe.scheduler.step()


def to_float32(preds):
    """The forward's outputs with every floating tensor in float32 (PaddleOCR's ``to_float32``
    before the loss), through dicts, lists and tuples."""
    if isinstance(preds, torch.Tensor):
        return preds.float() if preds.is_floating_point() else preds
    if isinstance(preds, dict):
        return {k: to_float32(v) for k, v in preds.items()}
    if isinstance(preds, (list, tuple)):
        return type(preds)(to_float32(v) for v in preds)
    return preds
