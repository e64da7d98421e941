"""What a PyTorch user meets through ptocr's public API (``create_model``, ``load``,
``save_model``): a zoo name's settings, saving what ``load`` gives, training modes, casts and
inputs of the wrong shape."""

from __future__ import annotations

import pytest
import torch

import ptocr
from ptocr.architectures import get_architecture
from ptocr.manifest import load_manifest

ZOO = load_manifest()


def _network_of(entry) -> dict:
    """The architecture's description with the entry's arguments over it (no dictionary rule)."""
    cfg = get_architecture(entry.architecture)["model"]
    for part, args in entry.arguments.items():
        cfg[part].update(args)
    return cfg


@pytest.mark.parametrize("name", ptocr.list_models())
def test_a_zoo_name_without_weights_builds_that_model_s_head(name):
    # Was the architecture's default for every recognizer without arguments.head.num_classes:
    # en_PP-OCRv4_rec had 6625 classes, not the 97 of en_dict.txt + blank + space.
    entry = ZOO.model_entry(name)
    model = ptocr.create_model(name)
    dictionary = entry.builtin_dictionary()
    if entry.task == "rec":  # CTC: blank + the dictionary's characters (+ space)
        with torch.no_grad():
            classes = model(torch.rand(1, 3, 48, 64)).shape[-1]
        assert classes == dictionary.num_classes == model.config["model"]["head"]["num_classes"]
        assert model.dictionary == dictionary
    else:  # detectors, classifiers, unwarping: no dictionary, the head as the architecture has it
        assert dictionary is None and model.dictionary is None
        assert model.config["model"]["head"] == _network_of(entry)["head"]


def test_a_fresh_zoo_recognizer_saves_with_its_dictionary(tmp_path):
    # Was refused: the head did not fit en_dict.txt, and the model had no dictionary to write.
    dst = ptocr.save_model(ptocr.create_model("en_PP-OCRv4_rec"), tmp_path / "en.safetensors")
    again = ptocr.load(dst, optimize=False)
    assert again.dictionary.characters == ZOO.model_entry("en_PP-OCRv4_rec").builtin_dictionary().characters
    assert again.model.head.out_channels == 97


def test_num_classes_overrides_the_zoo_dictionary():
    model = ptocr.create_model("en_PP-OCRv4_rec", num_classes=28)
    assert model.head.out_channels == 28 and model.dictionary is None
