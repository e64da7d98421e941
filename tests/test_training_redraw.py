"""Samples that cannot be made, as PaddleOCR's datasets treat them with on_error="redraw" (what
ptocr train uses): the error logged and another sample drawn (a random one in training, the next
one in evaluation); by default a clear error naming the line."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from ptocr.errors import PtocrError
from ptocr.training import ClsDataset, CTCLabelEncode, RecDataset
from ptocr.training.data import Compose, EncodeText


def _folder(tmp_path, texts, corrupt=()):
    rng = np.random.default_rng(0)
    for i in range(len(texts)):
        path = tmp_path / f"{i}.png"
        if i in corrupt:
            path.write_bytes(b"not an image")
        else:
            cv2.imwrite(str(path), rng.integers(0, 255, (32, 64, 3), dtype=np.uint8))
    label = tmp_path / "rec.txt"
    label.write_text("".join(f"{i}.png\t{t}\n" for i, t in enumerate(texts)), encoding="utf-8")
    return label


CHARS = list("abcdefghij")


def test_a_corrupt_image_is_an_error_naming_its_line_by_default(tmp_path):
    label = _folder(tmp_path, ["abc", "bad", "cde"], corrupt={1})
    data = RecDataset(label, tmp_path, CHARS, train=False)
    with pytest.raises(PtocrError, match=r"rec\.txt:2"):
        data[1]


def test_redraw_takes_the_next_sample_in_evaluation_and_logs(tmp_path, caplog):
    label = _folder(tmp_path, ["abc", "bad", "cde"], corrupt={1})
    data = RecDataset(label, tmp_path, CHARS, train=False, on_error="redraw")
    with caplog.at_level(logging.WARNING, logger="ptocr.training"):
        item = data[1]
    assert item["text"] == "cde"  # PaddleOCR's (idx + 1) % len
    assert "rec.txt:2" in caplog.text and "drawing another sample" in caplog.text


def test_redraw_in_training_draws_numpy_s_random_index(tmp_path):
    """SimpleDataSet in train mode: np.random.randint(len) after the failure, the same draw."""
    label = _folder(tmp_path, ["abc", "bad", "cde", "fgh", "ij"], corrupt={1})
    transforms = Compose([EncodeText(CTCLabelEncode(CHARS))])  # no RecConAug: it draws from numpy too
    data = RecDataset(label, tmp_path, CHARS, train=True, on_error="redraw", transforms=transforms)
    np.random.seed(7)
    expected = np.random.randint(5)
    while expected == 1:  # the drawn line may be the corrupt one again: PaddleOCR draws once more
        expected = np.random.randint(5)
    np.random.seed(7)
    assert data[1]["text"] == ["abc", "bad", "cde", "fgh", "ij"][expected]


def test_invalid_labels_are_kept_and_redrawn_with_a_warning(tmp_path):
    """A label with no dictionary character: PaddleOCR finds it when drawn and draws another."""
    label = _folder(tmp_path, ["abc", "xyz", "cde"])
    with pytest.warns(UserWarning, match="1 of 3 label lines cannot make a sample"):
        data = RecDataset(label, tmp_path, CHARS, train=False, on_error="redraw")
    assert len(data) == 3 and data.invalid[0][0].endswith("rec.txt:2")
    assert data[1]["text"] == "cde"
    with pytest.raises(PtocrError, match=r"rec\.txt:2"):
        RecDataset(label, tmp_path, CHARS, train=False)


def test_a_dataset_that_can_make_no_sample_stops(tmp_path):
    label = _folder(tmp_path, ["xyz", "yyy"])
    with pytest.raises(PtocrError, match="no samples"), pytest.warns(UserWarning):
        RecDataset(label, tmp_path, CHARS, on_error="redraw")
    label = _folder(tmp_path, ["abc", "bcd"], corrupt={0, 1})
    data = ClsDataset(label, tmp_path, label_list=("abc", "bcd"), on_error="redraw")
    with pytest.raises(PtocrError, match="100 samples in a row"):
        data[0]
    with pytest.raises(PtocrError, match="on_error"):
        ClsDataset(label, tmp_path, label_list=("abc", "bcd"), on_error="skip")


def test_ptocr_train_datasets_redraw(tmp_path):
    """ptocr train builds its datasets in PaddleOCR's redraw mode: a corrupt image in a training
    set is logged and replaced, not the end of a long run."""
    from ptocr.training.loaders import DataSettings, build_dataset

    label = _folder(tmp_path, ["abc", "bad", "cde"], corrupt={1})
    section = {"dataset": {"name": "SimpleDataSet", "data_dir": str(tmp_path), "label_file_list": [str(label)],
                           "transforms": [{"DecodeImage": {"img_mode": "BGR", "channel_first": False}},
                                          {"CTCLabelEncode": None}, {"RecResizeImg": {"image_shape": [3, 32, 100]}},
                                          {"KeepKeys": {"keep_keys": ["image", "label", "length"]}}]},
               "loader": {"batch_size_per_card": 2, "shuffle": False, "drop_last": False, "num_workers": 0}}
    data = build_dataset(section, "Eval", DataSettings("rec", CTCLabelEncode(CHARS)))
    assert data.on_error == "redraw" and [data[i]["text"] for i in range(3)] == ["abc", "cde", "cde"]
