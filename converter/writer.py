"""Writing a converted model in ptocr's model-file layout (``ptocr.checkpoint.write_model_file``:
the self-contained .safetensors, ``<stem>.config.json`` and a recognizer's ``<stem>.dict.txt``,
all or nothing), with the command line's wording of its errors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from converter.errors import ConversionError
from ptocr import checkpoint
from ptocr.errors import ModelFileError


@dataclass(frozen=True)
class Written:
    weights: Path
    config: Path
    dictionary: Path | None
    sha256: str


def check_destination(dst: str | os.PathLike, *, force: bool = False) -> list[Path]:
    """``ptocr.checkpoint.check_destination`` for the command line: the CLI asks before
    converting, the writer again before writing."""
    try:
        return checkpoint.check_destination(dst, force=force, force_hint="pass --force")
    except ModelFileError as e:
        raise ConversionError(str(e)) from None


def write_converted(
    state_dict: dict[str, np.ndarray | torch.Tensor],
    config: dict,
    dictionary_text: str | None,
    dst: str | os.PathLike,
    *,
    force: bool = False,
) -> Written:
    dst = Path(dst)
    # the dictionary's place is checked for a model without one too: a recognizer's left there by
    # an earlier conversion would otherwise stay beside this model as if it were its own
    check_destination(dst, force=force)
    tensors = {k: _as_tensor(v) for k, v in state_dict.items()}
    sha = checkpoint.write_model_file(tensors, config, dictionary_text, dst)
    config_path, dict_path = checkpoint.sidecar_paths(dst)
    return Written(dst, config_path, dict_path if dictionary_text is not None else None, sha)


def _as_tensor(v) -> torch.Tensor:  # write_model_file detaches and lays out what it writes
    return v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v))
