"""Writing a converted model: safetensors (self-contained) + config.json + dictionary.

The .safetensors file is the model: its metadata holds the config and the dictionary,
so it loads alone. Beside it go ``<stem>.config.json`` and, for recognizers,
``<stem>.dict.txt`` for people and hubs. Everything is written to temporary files in
the destination folder and renamed into place only when all of them are complete, the
.safetensors last; on any failure nothing new is left behind.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from converter.errors import ConversionError
from ptocr.atomic import give_output_permissions, nearest_existing, temp_beside
from ptocr.checkpoint import encode_metadata, file_sha256



@dataclass(frozen=True)
class Written:
    weights: Path
    config: Path
    dictionary: Path | None
    sha256: str


def sidecar_paths(dst: Path) -> tuple[Path, Path]:
    return dst.with_name(dst.stem + ".config.json"), dst.with_name(dst.stem + ".dict.txt")


def check_destination(dst: str | os.PathLike, *, force: bool = False) -> list[Path]:
    """The files a conversion to ``dst`` writes or replaces (the weights, the config and the
    dictionary's place beside them, taken for a model without one too: see write_converted),
    or the reason they cannot be written: the command line asks before converting, the writer
    again before writing."""
    dst = Path(dst)
    if dst.suffix != ".safetensors":
        raise ConversionError(f"{dst}: the output must be a .safetensors file")
    if not dst.parent.is_dir():
        raise ConversionError(_missing_folder(dst))
    config_path, dict_path = sidecar_paths(dst)
    targets = [dst, config_path, dict_path]
    for p in targets:  # --force replaces files, never a folder: name the one in the way
        if p.is_dir():
            raise ConversionError(f"{p} is a folder, not a file; it cannot be overwritten with the "
                                  f"{'converted model' if p == dst else 'file written beside ' + dst.name}")
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise ConversionError(
            f"{existing[0]} already exists; pass --force to overwrite it"
        )
    return targets


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
    config_path, dict_path = sidecar_paths(dst)

    tensors = {k: _as_tensor(v) for k, v in state_dict.items()}
    metadata = encode_metadata(config, dictionary_text)
    config_text = json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    staged: list[tuple[Path, Path]] = []
    renamed: list[Path] = []
    try:
        tmp = temp_beside(dst)
        staged.append((tmp, dst))
        save_file(tensors, str(tmp), metadata=metadata)
        give_output_permissions(tmp)  # save_file recreates the file as 0600
        tmp = temp_beside(config_path)
        staged.append((tmp, config_path))
        tmp.write_text(config_text, encoding="utf-8")
        if dictionary_text is not None:
            tmp = temp_beside(dict_path)
            staged.append((tmp, dict_path))
            tmp.write_text(dictionary_text, encoding="utf-8")
        sha = file_sha256(staged[0][0])
        # Sidecars first, the weights last: a present .safetensors means a complete set.
        for tmp, final in staged[1:] + staged[:1]:
            os.replace(tmp, final)
            renamed.append(final)
        if dictionary_text is None:  # --force over a recognizer's files: its dictionary is not this model's
            dict_path.unlink(missing_ok=True)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        if len(renamed) < len(staged):
            for final in renamed:
                final.unlink(missing_ok=True)
        raise
    return Written(dst, config_path, dict_path if dictionary_text is not None else None, sha)


def _missing_folder(dst: Path) -> str:
    """Why ``dst``'s folder is not there: the nearest existing path above it is a file (or some
    other non-folder), or the folder does not exist."""
    above = nearest_existing(dst.parent)
    if os.path.lexists(above) and not above.is_dir():
        kind = "a file" if above.is_file() else "not a regular file"
        return f"{dst}: {above} is {kind}, not a folder"
    return f"{dst}: the folder {dst.parent} does not exist"


def _as_tensor(v) -> torch.Tensor:
    t = v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v))
    return t.detach().contiguous()
