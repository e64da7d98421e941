"""The fine-tuning loop end to end, as a PaddleOCR user walks it, on tiny data written here.

Label files in PaddleOCR's format (words drawn with cv2.putText, det boxes around them) ->
RecDataset / DetDataset -> DataLoader (collate, shuffle or MultiScaleSampler, two worker
processes) -> create_model(pretrained=the shared Paddle folder).train() -> CTCLoss / DBLoss ->
create_optimizer -> steps -> save_model -> ptocr.load -> evaluate_rec / evaluate_det.
(torch.compile of a recognizer in training mode took ~96 s to compile here: not run.)
"""

from __future__ import annotations

import json
import math
import random
import warnings

import cv2
import numpy as np
import pytest
import torch
from conftest import intra_op_threads
from torch.utils.data import DataLoader, Sampler

import ptocr
from ptocr.errors import PtocrError
from ptocr.training import (CTCLoss, DBLoss, DetDataset, MultiScaleSampler, RecDataset, collate,
                            create_optimizer, det_train_transforms, evaluate_det, evaluate_rec)
from ptocr.training.data import DET_TRAIN

WORDS = ["HELLO", "WORLD", "OCR42", "TORCH", "PADDLE", "DATA"]
FONT = cv2.FONT_HERSHEY_SIMPLEX
# PaddleOCR's config sections (ch_PP-OCRv4_rec.yml, PP-OCRv4_mobile_det.yml), warmup shortened;
# the recognizers' rate lowered from 0.0005 (set for batches of 128): overfitting a batch of 4
# at it diverged (loss 7 -> 50-90) in 9 of 78 seeds; at 0.0001 the loss fell >17x in 80 of 80.
REC_CONFIG = {"Optimizer": {"name": "Adam", "beta1": 0.9, "beta2": 0.999, "clip_norm": 10,
                            "lr": {"name": "Cosine", "learning_rate": 0.0001, "warmup_epoch": 0.5},
                            "regularizer": {"name": "L2", "factor": 3.0e-05}},
              "Architecture": {"Backbone": {"name": "PPLCNetV3", "scale": 0.95},
                               "Head": {"name": "CTCHead", "fc_decay": 0.00001}}}
DET_CONFIG = {"Optimizer": {"name": "Adam", "beta1": 0.9, "beta2": 0.999,
                            "lr": {"name": "Cosine", "learning_rate": 0.001, "warmup_epoch": 1},
                            "regularizer": {"name": "L2", "factor": 5.0e-05}}}


@pytest.fixture(autouse=True)
def one_thread():
    # Seeded: the augmentations (python's and numpy's RNGs, the workers' from torch's) are the
    # same each run, so a failure reproduces.
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    with intra_op_threads(1):
        yield


def _write_rec_data(root) -> str:
    lines = []
    for i, word in enumerate(WORDS):
        image = np.full((48, 24 + 26 * len(word), 3), 255, np.uint8)
        cv2.putText(image, word, (8, 36), FONT, 1.0, (0, 0, 0), 2)
        cv2.imwrite(str(root / f"w{i}.png"), image)
        lines.append(f"w{i}.png\t{word}")
    (root / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(root / "train.txt")


def _word_box(word: str, x: int, y: int) -> list:
    (w, h), _ = cv2.getTextSize(word, FONT, 2, 4)
    return [[x - 2, y - h - 4], [x + w + 2, y - h - 4], [x + w + 2, y + 8], [x - 2, y + 8]]


def _write_det_data(root) -> tuple[str, str]:
    """train.txt (one box partly outside its image) and val.txt (boxes inside)."""
    train, val = [], []
    for i in range(4):
        image = np.full((256, 320, 3), 255, np.uint8)
        entries = []
        for j, word in enumerate(["TEXT", "Hello"]):
            x, y = 20 + 8 * i, 80 + 110 * j
            cv2.putText(image, word, (x, y), FONT, 2, (0, 0, 0), 4)
            entries.append({"transcription": word, "points": _word_box(word, x, y)})
        cv2.imwrite(str(root / f"d{i}.jpg"), image)
        val.append(f"d{i}.jpg\t{json.dumps(entries)}")
        outside = {"transcription": "cut", "points": [[-40, 225], [60, 225], [60, 250], [-40, 250]]}
        train.append(f"d{i}.jpg\t{json.dumps(entries + [outside])}")
    (root / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (root / "val.txt").write_text("\n".join(val) + "\n", encoding="utf-8")
    return str(root / "train.txt"), str(root / "val.txt")


def _model(shared_dir, name: str, folder: str):
    with warnings.catch_warnings():  # a detector's fresh threshold branch: expected here
        warnings.simplefilter("ignore")
        return ptocr.create_model(name, pretrained=shared_dir / "paddle_models" / folder).train()


def _step(net, criterion, recipe, batch) -> float:
    loss = criterion(net(batch["image"]), batch)["loss"]
    assert math.isfinite(loss.item())
    recipe.optimizer.zero_grad()
    loss.backward()
    recipe.step()
    return loss.item()


def _overfit(net, criterion, recipe, batch, steps: int) -> list[float]:
    return [_step(net, criterion, recipe, batch) for _ in range(steps)]


def _bf16_loss(net, criterion, batch) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = criterion(net(batch["image"]), batch)["loss"]
    assert loss.dtype == torch.float32 and math.isfinite(float(loss))
    return loss


# ---------------------------------------------------------------------------------------------
# Recognizers
# ---------------------------------------------------------------------------------------------
def test_v4_rec_loop_with_multiscale_batches_in_workers(shared_dir, tmp_path):
    label = _write_rec_data(tmp_path)
    net = _model(shared_dir, "ch_PP-OCRv4_rec", "ch_PP-OCRv4_rec_infer")
    data = RecDataset(label, tmp_path, net.dictionary, generation="PP-OCRv4")
    sampler = MultiScaleSampler(len(data), first_bs=4)
    loader = DataLoader(data, batch_sampler=sampler, collate_fn=collate, num_workers=2)
    assert {b["image"].shape[2] for b in loader} <= {32, 48, 64}
    # Each pass of a loop that never calls set_epoch (the DataLoader's iter(sampler)) reshuffles,
    # as PaddleOCR's seeded sampler does (the last pass's order shuffled again after reseeding);
    # a sampler built alike replays the passes, set_epoch changing nothing.
    passes = [list(sampler) for _ in range(3)]
    assert passes[1] != passes[2] and passes[1] != passes[0]
    replay = MultiScaleSampler(len(data), first_bs=4)
    replay.set_epoch(7)
    assert [list(replay) for _ in range(4)][1:] == passes  # the loader took the first pass
    assert [b["image"].shape[2] for b in loader] == [batch[0][1] for batch in list(replay)]

    recipe = create_optimizer(net, REC_CONFIG, epochs=3, steps_per_epoch=len(loader))
    batch = collate([data[i] for i in range(4)])
    losses = _overfit(net, CTCLoss(), recipe, batch, 6)
    assert losses[-1] < losses[0]
    _bf16_loss(net, CTCLoss(), batch).backward()

    # Resuming: a fresh recipe from the same config takes the pieces' state_dicts.
    state = {"optimizer": recipe.optimizer.state_dict(), "scheduler": recipe.scheduler.state_dict()}
    resumed = create_optimizer(net, REC_CONFIG, epochs=3, steps_per_epoch=len(loader))
    resumed.optimizer.load_state_dict(state["optimizer"])
    resumed.scheduler.load_state_dict(state["scheduler"])
    assert [g["lr"] for g in resumed.optimizer.param_groups] == [g["lr"] for g in recipe.optimizer.param_groups]
    assert resumed.scheduler.last_epoch == 6

    saved = ptocr.save_model(net, tmp_path / "mine.safetensors")
    result = evaluate_rec(ptocr.load(saved), label, data_dir=tmp_path)
    assert result["acc"] > 0.5 and 0 <= result["norm_edit_dis"] <= 1


def test_v5_rec_loop_refuses_a_dictionary_the_head_does_not_fit(shared_dir, tmp_path):
    label = _write_rec_data(tmp_path)
    net = _model(shared_dir, "PP-OCRv5_mobile_rec", "PP-OCRv5_mobile_rec_infer")
    data = RecDataset(label, tmp_path, net.dictionary, generation="PP-OCRv5")
    loader = DataLoader(data, batch_size=3, shuffle=True, collate_fn=collate, num_workers=2)
    recipe = create_optimizer(net, REC_CONFIG, epochs=2, steps_per_epoch=len(loader))
    for batch in loader:
        _step(net, CTCLoss(), recipe, batch)

    # A user's own 36-character dictionary, the head left at the pretrained 18385 classes: every
    # index fits the head, so only the class counts tell; refused on the first batch.
    mine = RecDataset(label, tmp_path, list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), generation="PP-OCRv5")
    batch = next(iter(DataLoader(mine, batch_size=3, collate_fn=collate, num_workers=2)))
    with pytest.raises(PtocrError, match=r"dictionary of 38 classes.*head predicts 18385.*num_classes=38"):
        CTCLoss()(net(batch["image"]), batch)
    fitted = ptocr.create_model("PP-OCRv5_mobile_rec", num_classes=38).train()
    assert math.isfinite(float(CTCLoss()(fitted(batch["image"]), batch)["loss"]))


def test_empty_or_wholly_skipped_label_files_are_refused(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(PtocrError, match=r"no samples.*empty\.txt"):
        RecDataset(empty, tmp_path, list("abc"))
    with pytest.raises(PtocrError, match=r"no samples.*empty\.txt"):
        DetDataset(empty, tmp_path)
    too_long = tmp_path / "long.txt"
    too_long.write_text("a.png\t" + "a" * 30 + "\n", encoding="utf-8")
    with pytest.warns(UserWarning), pytest.raises(PtocrError, match=r"all 1 label lines.*skipped"):
        RecDataset(too_long, tmp_path, list("abc"), skip_invalid=True)
    with pytest.raises(PtocrError, match=r"nothing to evaluate.*empty\.txt"):
        evaluate_rec(lambda image: ("a", 1.0), empty, dictionary_only=False)


# ---------------------------------------------------------------------------------------------
# Detector
# ---------------------------------------------------------------------------------------------
class _SameIndex(Sampler):
    def __iter__(self):
        return iter([0] * 4)

    def __len__(self):
        return 4


def test_v4_det_loop_with_a_box_partly_outside(shared_dir, tmp_path):
    train_label, val_label = _write_det_data(tmp_path)
    settings = {**DET_TRAIN, "crop": {**DET_TRAIN["crop"], "size": (160, 160)}}
    data = DetDataset(train_label, tmp_path, transforms=det_train_transforms(settings))
    # Each worker draws its own augmentations (torch seeds numpy's RNG per worker).
    same = [b["image"] for b in DataLoader(data, batch_size=1, sampler=_SameIndex(), collate_fn=collate,
                                           num_workers=2)]
    assert len({float(x.sum()) for x in same}) > 1

    net = _model(shared_dir, "ch_PP-OCRv4_det", "ch_PP-OCRv4_det_infer")
    loader = DataLoader(data, batch_size=2, shuffle=True, collate_fn=collate, num_workers=2)
    recipe = create_optimizer(net, DET_CONFIG, epochs=4, steps_per_epoch=len(loader))
    for batch in loader:
        _step(net, DBLoss(), recipe, batch)
    losses = _overfit(net, DBLoss(), recipe, batch, 5)
    assert losses[-1] < losses[0]
    _bf16_loss(net, DBLoss(), batch).backward()

    saved = ptocr.save_model(net, tmp_path / "det.safetensors")
    result = evaluate_det(ptocr.load(saved), val_label, data_dir=tmp_path)
    assert set(result) == {"precision", "recall", "hmean"} and all(0 <= v <= 1 for v in result.values())
    empty = tmp_path / "none.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(PtocrError, match="nothing to evaluate"):
        evaluate_det(ptocr.load(saved), empty, data_dir=tmp_path)
