"""What seeding a Paddle 2 program and a Paddle 3 (PIR) one share: the initial value of a
parameter given its role, the target spread of the output logits, and the ``seeding.json``
record written beside the weights.

The program-specific modules (``seeding_paddle2``, ``seeding_pir``) read each parameter's
role from their program's ops and build on this; ``verification.seeding`` holds the recipe
above both.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from converter.errors import FormatError

RECORD = "seeding.json"  # how the values were chosen, beside the weights
# Target standard deviation of the logits feeding the output activation: softmax logits of
# std 2 give peaked rows like a trained model's without the rounding sensitivity of a larger
# spread (which pushes deep seeded recognizers' float32 error past the parity tolerance).
LOGIT_STD = {"softmax": 2.0, "sigmoid": 6.0}  # also: the output activations seeding recognizes


def initial_value(name: str, shape, dtype: np.dtype | None, role: str, rng: np.random.Generator) -> np.ndarray:
    """A seeded value for parameter ``name`` from its role (what the op reading it does):
    conv and matmul weights N(0, 1/fan_in) (unit gain), batch-norm scales and variances
    U(0.5, 1.5), norm scales near one, LSTM weights U(-1/sqrt(h), 1/sqrt(h)), biases, shifts
    and anything else N(0, 0.1); integer tensors zero."""
    shape = tuple(shape)
    if dtype is None or any(d < 0 for d in shape):
        raise FormatError(f"persistable variable {name} has no fixed shape/dtype: {shape}")
    if dtype.kind in "iub":
        return np.zeros(shape, dtype)
    if role == "conv":  # [out, in/groups, kh, kw]
        fan_in = int(np.prod(shape[1:])) or 1
        a = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
    elif role == "conv_transpose":  # [in, out/groups, kh, kw]: each output sums in*kh*kw/stride^2
        fan_in = max(1, shape[0] * int(np.prod(shape[2:])) // 4)
        a = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
    elif role == "matmul":  # Paddle Linear weight [in, out]
        a = rng.normal(0.0, 1.0 / np.sqrt(max(1, shape[0])), shape)
    elif role == "bn_scale":
        a = rng.uniform(0.5, 1.5, shape)
    elif role == "bn_var":
        a = rng.uniform(0.5, 1.5, shape)
    elif role == "norm_scale":
        a = rng.uniform(0.7, 1.3, shape)
    elif role == "multiplier" or role == "prelu":
        a = 1.0 + rng.normal(0.0, 0.1, shape) if role == "multiplier" else rng.uniform(0.1, 0.3, shape)
    elif role.startswith("rnn:"):
        h = int(role.split(":")[1]) or max(shape)
        a = rng.uniform(-1 / np.sqrt(h), 1 / np.sqrt(h), shape)
    else:  # biases, BN shifts and means, anything else small
        a = rng.normal(0.0, 0.1, shape)
    return a.astype(dtype)


def write_record(folder: str | os.PathLike, record: dict) -> None:
    """Write ``seeding.json`` in ``folder``."""
    (Path(folder) / RECORD).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


def read_record(folder: str | os.PathLike) -> dict:
    """The ``seeding.json`` of ``folder``."""
    return json.loads((Path(folder) / RECORD).read_text())
