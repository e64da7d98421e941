"""PaddleOCR's mixed-precision training (``Global.use_amp``) in PyTorch terms.

What tools/train.py and tools/program.py do with ``use_amp: true``: the forward runs under
``paddle.amp.auto_cast(level=amp_level, dtype=amp_dtype)``, its outputs are cast back to
float32 (``to_float32``) before the loss, and a ``paddle.amp.GradScaler(init_loss_scaling=scale_loss,
use_dynamic_loss_scaling=...)`` scales the loss, unscales the gradients and skips the update
where one is not finite; the LR schedule steps either way. Evaluation's forward runs under the
same auto-cast (tools/eval.py's in float16, whatever amp_dtype says). Paddle's auto-cast and
scaler work on GPUs only: on the CPU they warn and do nothing. Here: ``torch.autocast`` on the
GPU, ``torch.amp.GradScaler`` with Paddle's growth settings (x2 after 2000 finite steps, x0.5 on
a non-finite one), gradient clipping on the unscaled gradients (Paddle clips inside the update,
after unscaling); on the CPU, float32 with a warning, as Paddle.

Where the two differ (doc/training.md): Paddle's default level O2 casts the weights to float16
and keeps float32 master copies; PyTorch's autocast keeps float32 weights and runs each op in
the dtype its op lists give (Paddle's O1). O1, O2 and OD run as autocast here, with one log line
for O2. ``amp_custom_black_list`` / ``amp_custom_white_list`` name Paddle ops and are refused
unless empty. The scaler's state is not in a checkpoint (PaddleOCR does not save it either): a
resumed run starts again from ``scale_loss``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import warnings

import torch

from ptocr.errors import PtocrError

__all__ = ["MixedPrecision", "AMP_DTYPES", "AMP_LEVELS", "to_float32"]

log = logging.getLogger("ptocr.training")

AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
AMP_LEVELS = ("O0", "OD", "O1", "O2")  # OD: Paddle's "default" (convs and matmuls cast)
# paddle.amp.GradScaler's defaults (Paddle 2.5 to 3.x): incr_every_n_steps, incr_ratio,
# decr_ratio; its decr_every_n_nan_or_inf 1 is PyTorch's halving at each non-finite step
_GROWTH_INTERVAL, _GROWTH, _BACKOFF = 2000, 2.0, 0.5


@dataclasses.dataclass(frozen=True)
class MixedPrecision:
    """Global's AMP settings: off by default (``enabled=False`` runs the plain float32 step)."""

    enabled: bool = False
    dtype: torch.dtype = torch.float16
    level: str = "O2"
    scale: float = 1.0
    dynamic: bool = False

    @classmethod
    def from_global(cls, glob: dict) -> MixedPrecision:
        """From a Global section, PaddleOCR's defaults for what it leaves out or nulls; read (and
        bad values refused) only where ``use_amp`` is on, as PaddleOCR reads them only then."""
        use = glob.get("use_amp")
        if use not in (None, True, False):
            raise PtocrError(f"Global.use_amp={use!r}: true or false")
        if not use:
            return cls()

        def setting(key, default):
            value = glob.get(key)
            return default if value is None else value
        name = str(setting("amp_dtype", "float16")).lower()  # Paddle's casing rules
        if name not in AMP_DTYPES:
            raise PtocrError(f"Global.amp_dtype={glob['amp_dtype']!r}: one of {', '.join(AMP_DTYPES)}")
        level = str(setting("amp_level", "O2")).upper()
        if level not in AMP_LEVELS:
            raise PtocrError(f"Global.amp_level={glob['amp_level']!r}: one of {', '.join(AMP_LEVELS)}")
        scale = setting("scale_loss", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < float("inf"):
            raise PtocrError(f"Global.scale_loss={scale!r}: a positive number (e.g. 1024.0)")
        dynamic = setting("use_dynamic_loss_scaling", False)
        if dynamic not in (True, False):
            raise PtocrError(f"Global.use_dynamic_loss_scaling={dynamic!r}: true or false")
        for key in ("amp_custom_black_list", "amp_custom_white_list"):
            if glob.get(key):
                raise PtocrError(f"Global.{key}={glob[key]!r}: Paddle op names, which PyTorch's autocast does not "
                                 "take (leave it empty: autocast's own op lists decide)")
        return cls(True, AMP_DTYPES[name], level, float(scale), bool(dynamic))

    def on(self, device: torch.device) -> MixedPrecision:
        """What Paddle makes of these settings on ``device``: its auto-cast and loss scaler work on
        GPUs only (on the CPU they warn and do nothing: float32, no scaling), and a GPU without
        float16 (compute capability 7.0) or bfloat16 (8.0) arithmetic keeps the scaler but casts
        nothing (level O0)."""
        device = torch.device(device)
        if not self.enabled:
            return self
        if device.type != "cuda":
            log.warning("Global.use_amp has no effect on the %s, as in Paddle (its auto-cast and loss scaler work "
                        "on GPUs only): float32", device.type)
            return MixedPrecision()
        need = (8, 0) if self.dtype == torch.bfloat16 else (7, 0)
        have = torch.cuda.get_device_capability(device)
        if self.level != "O0" and have < need:
            log.warning("Global.amp_dtype %s needs a GPU of compute capability %d.%d (this one: %d.%d): nothing is "
                        "cast, as in Paddle (the loss scaler stays)", _name(self.dtype), *need, *have)
            return dataclasses.replace(self, level="O0")
        return self

    def describe(self) -> str:
        if not self.enabled:
            return "float32"
        scaling = "dynamic" if self.dynamic else "static"
        return f"autocast {_name(self.dtype)} (amp_level {self.level}), {scaling} loss scale {self.scale:g}"

    def autocast(self, device: torch.device):
        """The context the forward runs in: ``torch.autocast`` on ``device``, or nothing (AMP off,
        or level O0: every op in float32)."""
        if not self.enabled or self.level == "O0":
            return contextlib.nullcontext()
        return torch.autocast(torch.device(device).type, dtype=self.dtype)

    def scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        """PaddleOCR's GradScaler for a run (None where AMP is off); O2 said once in the log."""
        if not self.enabled:
            return None
        if self.level == "O2":
            log.info("Global.amp_level O2 runs as PyTorch autocast: float32 weights, each op in %s or float32 "
                     "by autocast's op lists (Paddle's O2 keeps float16 weights with float32 master copies)",
                     _name(self.dtype))
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
        scaler.step(recipe.optimizer)  # skipped where unscale_ found an inf or nan
        # a static scale stays Global.scale_loss (update(new_scale) also resets the step's state)
        scaler.update() if self.dynamic else scaler.update(new_scale=self.scale)
        with warnings.catch_warnings():  # PaddleOCR steps the LR whether or not the update ran, which
            # PyTorch takes for a mistake when the first update is the one skipped
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            recipe.scheduler.step()


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


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
