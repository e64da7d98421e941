"""ptocr train / eval behaviours found in review: each as PaddleOCR's tools do it, or a one-line
error where the original would fail deep inside its loop."""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import intra_op_threads
from test_train_configs import CONFIGS, _overrides

from ptocr.errors import PtocrError
from ptocr.training.losses import CTCLoss
from ptocr.training.multihead import MultiLoss
from ptocr.training.trainer import Trainer, _log_to


@pytest.fixture(autouse=True)
def one_thread():
    with intra_op_threads(1):
        yield


def test_ctc_alone_on_a_multihead_config(shared_dir, tmp_path):
    """doc/training.md's recipe: -o Loss.name=CTCLoss on ch_PP-OCRv4_rec.yml (its MultiLoss keys
    stay; PaddleOCR's losses take them as **kwargs and ignore them) with CTCLabelEncode in the lists."""
    ops = "[{DecodeImage: {img_mode: BGR, channel_first: false}}, {CTCLabelEncode: }, " \
          "{RecResizeImg: {image_shape: [3, 48, 320]}}, {KeepKeys: {keep_keys: [image, label, length]}}]"
    extra = ["Loss.name=CTCLoss", "Train.dataset.name=SimpleDataSet", "Train.sampler=", f"Train.dataset.transforms={ops}",
             f"Eval.dataset.transforms={ops}"]
    trainer = Trainer.from_config(CONFIGS / "ch_PP-OCRv4_rec.yml",
                                  _overrides("ch_PP-OCRv4_rec.yml", shared_dir, tmp_path, "ch_PP-OCRv4_rec_infer", extra))
    assert type(trainer.criterion) is CTCLoss and not trainer.multihead


@pytest.mark.parametrize("setting, message", [
    ("Global.max_text_length=abc", "max_text_length='abc': a whole number"),
    ("Global.print_batch_step=0", "print_batch_step=0"),
    ("Global.eval_batch_step=[0, 0]", "eval_batch_step=\\[0, 0\\]"),
    ("Global.seed=x", "seed='x'"),
])
def test_global_numbers_are_checked_before_the_loop(setting, message, shared_dir, tmp_path):
    name = "rec_en_number_lite_train.yml"
    with pytest.raises(PtocrError, match=message):
        Trainer.from_config(CONFIGS / name, _overrides(name, shared_dir, tmp_path, None, [setting]))


def test_bad_log_ranks_leaves_no_handler_behind(tmp_path):
    logger = logging.getLogger("ptocr.training")
    before = list(logger.handlers)
    with pytest.raises(PtocrError, match="log_ranks"), _log_to(tmp_path, log_ranks="x,y"):
        pass
    assert logger.handlers == before


def test_a_bad_log_call_is_reported_not_raised(tmp_path, capsys):
    """TrainLog, as logging's handlers: a message whose arguments do not format goes to
    handleError (stderr), out of the logging call nothing, held or written."""
    logger = logging.getLogger("ptocr.training")
    with _log_to(tmp_path) as train_log:
        logger.info("held %d", "x")  # before the log file opens: held
        logger.info("held fine")
        train_log.start()
        logger.info("written %d", "y")
        logger.info("written fine")
    text = (tmp_path / "train.log").read_text(encoding="utf-8")
    assert "held fine" in text and "written fine" in text and "held %d" not in text
    assert "Logging error" in capsys.readouterr().err


def test_sar_loss_ignores_the_padding_whatever_the_config_says():
    """tools/train.py sets SARLoss's ignore_index to the CTC classes + 1 under MultiHead."""
    loss = MultiLoss([{"CTCLoss": None}, {"SARLoss": {"ignore_index": 3}}])
    ctc_classes, steps = 6, 6  # SAR: predictions for every label position (the last dropped by the loss)
    predicts = {"ctc": torch.randn(2, 8, ctc_classes), "sar": torch.randn(2, steps, ctc_classes + 1)}
    padding = ctc_classes + 1
    label_sar = torch.tensor([[ctc_classes, 1, 2, ctc_classes, padding, padding],
                              [ctc_classes, 3, ctc_classes, padding, padding, padding]])
    batch = {"label_ctc": torch.tensor([[2, 3, 0], [4, 0, 0]]), "label_sar": label_sar,
             "length": torch.tensor([2, 1]), "valid_ratio": torch.tensor([1.0, 1.0])}
    out = loss(predicts, batch)
    assert loss.losses["SARLoss"].ignore_index == padding and torch.isfinite(out["loss"])


def test_bad_samples_reach_train_log(shared_dir, tmp_path):
    """A corrupt image in the training data is logged where the loop's lines go, and skipped."""
    name = "rec_en_number_lite_train.yml"
    overrides = _overrides(name, shared_dir, tmp_path)
    label = next(o.split("=", 1)[1].strip("[]") for o in overrides if o.startswith("Train.dataset.label_file_list"))
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    lines = open(label, encoding="utf-8").read()
    with open(label, "w", encoding="utf-8") as f:  # first: the one iteration draws it
        f.write(f"{bad}\tpain\n{lines}")
    from ptocr.training.trainer import train

    train(CONFIGS / name, overrides + ["Global.epoch_num=1", "Global.eval_batch_step=[0, 100]",
                                       "Train.loader.shuffle=false"])
    log = (tmp_path / "out" / "train.log").read_text(encoding="utf-8")
    assert "broken.png" in log and "drawing another sample" in log
