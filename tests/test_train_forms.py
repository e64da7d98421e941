"""The training-checkpoint form of every suite model converts to the same network.

Real training checkpoints exist for two models (``tests/test_convert.py``). For every
other, a checkpoint is derived from the inference folder through its ``.pdiparams.info``
(structured name -> tensor, as ``paddle.save(model.state_dict())`` writes it), plain and
as a distillation checkpoint (the model as ``Student``, a different ``Teacher`` beside
it), and must convert to exactly the state dict of the inference folder.
"""

import pickle
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_same_state
from converter.convert import convert
from converter.readers import read_source
from verification.seeding import seed_folder
from ptocr.manifest import load_manifest
from verification.suite import CHECKPOINT, SEEDED, source_folder, suite

# Paddle 3 (PIR) releases have no structured names to derive from: tests/test_train_forms_pir.py
# derives theirs from the original training code's names instead.
PADDLE2 = [e for e in suite() if e.kind != CHECKPOINT
           and ((load_manifest().models.get(e.model) or {}).get("source") or {}).get("format") != "paddle3_pir"]


def _inference_folder(entry, shared, tmp_path):
    src = source_folder(shared, entry)
    if not (src / "inference.pdiparams.info").is_file():
        pytest.skip(f"{entry.model} has no .pdiparams.info (no structured names to derive from)")
    # Named like the model's folder: conversion finds the model's dictionary by that name.
    return seed_folder(src, tmp_path / entry.folder) if entry.kind == SEEDED else src


@pytest.mark.parametrize("entry", PADDLE2, ids=[e.id for e in PADDLE2])
def test_derived_training_checkpoints_convert_like_the_inference_model(shared_dir, tmp_path, entry):
    folder = _inference_folder(entry, shared_dir, tmp_path)
    reference = convert(folder, entry.arch)  # its dictionary from the model's name, or the one in its folder
    # The checkpoints lie elsewhere: a dictionary from the folder (a user's own model's) is given.
    own = reference.dictionary is not None and Path(reference.dictionary.source).parent == Path(folder)
    dic = str(reference.dictionary.source) if own else None
    space = reference.dictionary.use_space_char if own else None
    tensors = read_source(folder).tensors
    rng = np.random.default_rng(0)

    plain = tmp_path / f"{entry.model}_train" / "best_accuracy.pdparams"
    distilled = tmp_path / f"{entry.model}_train_distilled" / "best_accuracy.pdparams"
    for path, state in (
        (plain, dict(tensors)),
        (distilled, {**{f"Teacher.{k}": v + rng.normal(size=v.shape).astype(v.dtype) if v.dtype.kind == "f" else v
                        for k, v in tensors.items()},
                     **{f"Student.{k}": v for k, v in tensors.items()}}),
    ):
        path.parent.mkdir()
        path.write_bytes(pickle.dumps(state, protocol=4))
        conv = convert(path, None, dictionary=dic, use_space_char=space)
        assert conv.arch_name == entry.arch
        assert conv.source.format == "paddle_train"
        assert_same_state(conv.state_dict, reference.state_dict)
    teacher = convert(distilled, entry.arch, dictionary=dic, use_space_char=space, submodel="Teacher")
    assert not all(np.array_equal(teacher.state_dict[k].numpy(), reference.state_dict[k].numpy())
                   for k in reference.state_dict if reference.state_dict[k].is_floating_point())
