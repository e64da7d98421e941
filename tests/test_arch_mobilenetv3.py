"""MobileNetV3 family: DBFPN, the v2.0 / PP-OCRv2 / PP-OCRv3 mobile detectors and the v2.0
mobile (CRNN) recognizers. Shapes on the meta device, architecture detection on the real
folders, train-vs-infer equality, and dictionary refusal. (Parity against Paddle lives in
the parity suite.)"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from converter.convert import convert
from converter.errors import DictionaryError
from converter.readers import read_source
from ptocr.architectures import aliases_of, canonical_name, get_architecture
from ptocr.errors import ArchitectureError
from ptocr.models.backbones.mobilenetv3 import MobileNetV3
from ptocr.models.build import build_model
from ptocr.models.necks.db_fpn import DBFPN

DICTS = Path(__file__).resolve().parents[1] / "ptocr" / "dicts"

# ---------------------------------------------------------------- DBFPN


def test_dbfpn_shape_on_meta():
    with torch.device("meta"):
        neck = DBFPN([16, 24, 56, 480], out_channels=96)
        feats = [torch.empty(2, c, 160 // s, 96 // s) for c, s in zip([16, 24, 56, 480], [4, 8, 16, 32])]
        out = neck(feats)
    assert neck.out_channels == 96
    assert out.shape == (2, 96, 40, 24)
    # 1x1 lateral convs and 3x3 output convs, bias-free, as PaddleOCR's names say
    keys = set(neck.state_dict())
    assert keys == {f"{p}_conv.weight" for p in ("in2", "in3", "in4", "in5", "p2", "p3", "p4", "p5")}
    assert neck.p5_conv.weight.shape == (24, 96, 3, 3) and neck.in5_conv.weight.shape == (96, 480, 1, 1)


def test_dbfpn_concat_order_is_coarsest_first():
    torch.manual_seed(0)
    chans = [8, 16, 24, 32]
    neck = DBFPN(chans, out_channels=32).eval()
    feats = [torch.randn(1, c, 64 // s, 64 // s) for c, s in zip(chans, [4, 8, 16, 32])]
    base = neck(feats)
    bumped = neck([feats[0] + 1.0, *feats[1:]])  # change only the finest level (c2)
    q = 32 // 4
    # [p5, p4, p3, p2]: only the last quarter (p2) sees c2
    assert torch.equal(base[:, : 3 * q], bumped[:, : 3 * q])
    assert not torch.allclose(base[:, 3 * q :], bumped[:, 3 * q :])
    # p5 is upsampled x8 nearest: constant over 8x8 blocks
    p5 = base[0, :q]
    assert torch.equal(p5, p5[:, ::8, ::8].repeat_interleave(8, 1).repeat_interleave(8, 2))


@pytest.mark.parametrize("kwargs", [{"in_channels": [8, 16, 24], "out_channels": 32},
                                    {"in_channels": [8, 16, 24, 32], "out_channels": 30},
                                    {"in_channels": [8, 16, 24, 32], "out_channels": 32, "use_asf": True}])
def test_dbfpn_rejects_bad_settings(kwargs):
    with pytest.raises(ArchitectureError):
        DBFPN(**kwargs)


# ---------------------------------------------------------------- entries on meta


def test_det_backbone_channels_and_no_se():
    with torch.device("meta"):
        bb = MobileNetV3(model_name="large", scale=0.5, det=True, disable_se=True)
    assert bb.out_channels == [16, 24, 56, 480]
    assert not any("mid_se" in k for k in bb.state_dict())


@pytest.mark.parametrize("name", ["ch_ppocr_mobile_v2.0_det", "ch_PP-OCRv3_det"])
def test_det_entries_give_full_size_map(name):
    spec = get_architecture(name)
    model = build_model({**spec["model"], "head": {**spec["model"]["head"], "with_thresh": False}},
                        device="meta").eval()
    assert model(torch.empty(1, 3, 96, 160, device="meta")).shape == (1, 1, 96, 160)


def test_crnn_entry_sequence_and_classes():
    spec = get_architecture("ch_ppocr_mobile_v2.0_rec")
    model = build_model(spec["model"], device="meta").eval()
    assert model.backbone.out_channels == 288
    feat = model.backbone(torch.empty(2, 3, 32, 320, device="meta"))
    assert feat.shape == (2, 288, 1, 80)  # height strides 2*1*2*2*2 then the 2x2 pool
    assert model(torch.empty(2, 3, 32, 320, device="meta")).shape == (2, 80, 6625)


def test_aliases():
    assert canonical_name("ch_PP-OCRv2_det") == "ch_ppocr_mobile_v2.0_det"
    assert canonical_name("en_PP-OCRv3_det") == canonical_name("ml_PP-OCRv3_det") == "ch_PP-OCRv3_det"
    assert aliases_of("ch_PP-OCRv3_det") == ["en_PP-OCRv3_det", "ml_PP-OCRv3_det"]


# ---------------------------------------------------------------- real folders

DETECTED = {
    "ch_ppocr_mobile_v2.0_det_infer": ("ch_ppocr_mobile_v2.0_det", "inference head"),
    "ch_ppocr_mobile_v2.0_det_train": ("ch_ppocr_mobile_v2.0_det", "training head"),
    "ch_PP-OCRv2_det_infer": ("ch_ppocr_mobile_v2.0_det", "inference head"),
    "ch_PP-OCRv3_det_infer": ("ch_PP-OCRv3_det", "inference head"),
    "en_PP-OCRv3_det_infer": ("ch_PP-OCRv3_det", "inference head"),
}

# folder -> (class count, dictionary for it, use_space_char)
RECOGNIZERS = {
    "en_number_mobile_v2.0_rec_infer": (97, None, None),
    "en_number_mobile_v2.0_rec_train_finetune": (97, None, None),
    "french_mobile_v2.0_rec_infer": (137, "french_dict.txt", False),
    "japan_mobile_v2.0_rec_infer": (4400, "japan_dict.txt", False),
    "korean_mobile_v2.0_rec_infer": (3689, "korean_dict.txt", False),
    "pu_mobile_v2.0_rec_infer": (132, None, None),
    "custom_en_mobile_v2.0_rec_infer": (64, None, False),
}

_CACHE: dict = {}


def _convert(shared_dir, folder, dictionary=None, use_space_char=None):
    key = (folder, dictionary, use_space_char)
    if key not in _CACHE:
        dic = None if dictionary is None else DICTS / dictionary
        _CACHE[key] = convert(shared_dir / "paddle_models" / folder, None, dictionary=dic,
                              use_space_char=use_space_char)
    return _CACHE[key]


@pytest.mark.parametrize("folder", sorted(DETECTED))
def test_det_folder_detected(shared_dir, folder):
    conv = _convert(shared_dir, folder)
    assert (conv.arch_name, conv.form) == DETECTED[folder]


def test_v3_det_alt_program_same_network(shared_dir, tmp_path):
    src = shared_dir / "paddle_models" / "en_PP-OCRv3_det_infer"
    shutil.copy(src / "alt_pdmodel_paddle2.2.2" / "inference.pdmodel", tmp_path)
    for n in ("inference.pdiparams", "inference.pdiparams.info"):
        shutil.copy(src / n, tmp_path)
    assert convert(tmp_path).arch_name == "ch_PP-OCRv3_det"


def test_v2_det_train_equals_infer(shared_dir):
    train = _convert(shared_dir, "ch_ppocr_mobile_v2.0_det_train")
    infer = _convert(shared_dir, "ch_ppocr_mobile_v2.0_det_infer")
    sd_t, sd_i = train.model.state_dict(), infer.model.state_dict()
    assert set(sd_i) < set(sd_t)
    assert {k.split(".")[1] for k in set(sd_t) - set(sd_i)} == {"thresh"}
    assert all(torch.equal(sd_t[k], sd_i[k]) for k in sd_i)
    x = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(train.model.eval()(x), infer.model.eval()(x))
        maps = train.model.train()(x)["maps"]  # the threshold branch runs
    assert maps.shape == (1, 3, 96, 128)
    train.model.eval()


@pytest.mark.parametrize("folder", sorted(RECOGNIZERS))
def test_rec_folder_is_crnn(shared_dir, folder):
    classes, dictionary, space = RECOGNIZERS[folder]
    conv = _convert(shared_dir, folder, dictionary, space)
    assert conv.arch_name == "ch_ppocr_mobile_v2.0_rec"
    cfg = conv.config["model"]
    assert cfg["head"]["num_classes"] == classes == conv.dictionary.num_classes
    # one network: only the class count differs from the entry
    base = get_architecture("ch_ppocr_mobile_v2.0_rec")["model"]
    assert {**cfg, "head": {**cfg["head"], "num_classes": 6625}} == base


def test_rec_train_checkpoint_drops_lstm_duplicates(shared_dir):
    folder = "en_number_mobile_v2.0_rec_train_finetune"
    conv = _convert(shared_dir, folder)
    src = read_source(shared_dir / "paddle_models" / folder).tensors
    got = conv.model.state_dict()
    for layer in (0, 1):
        for cell, suffix in (("cell_fw", ""), ("cell_bw", "_reverse")):
            flat = src[f"neck.encoder.lstm.weight_ih_l{layer}{suffix}"]
            np.testing.assert_array_equal(got[f"neck.encoder.lstm.{layer}.{cell}.weight_ih"].numpy(), flat)
    dropped = sorted(e.source for e in conv.mapping.dropped)
    assert len(dropped) == 16 and all(re.search(r"\.lstm\.(weight|bias)_(ih|hh)_l[01]", d) for d in dropped)


@pytest.mark.parametrize("folder", ["german_mobile_v2.0_rec_infer", "ru_mobile_v2.0_rec_infer"])
def test_folder_dictionary_that_does_not_fit_is_refused(shared_dir, folder, tmp_path):
    # An official model (by its name or its weights) gets the zoo's (split) dictionary; a
    # model of its own (other weights, another name) has only the unfitting file beside it
    # and the default left, and neither fits.
    src = shared_dir / "paddle_models" / folder
    assert convert(src).dictionary.source.endswith("_v2.0_dict.txt")
    renamed = tmp_path / "my_model"
    shutil.copytree(src, renamed)
    assert convert(renamed).dictionary.source.endswith("_v2.0_dict.txt")
    params = renamed / "inference.pdiparams"
    data = bytearray(params.read_bytes())
    data[-1] ^= 1  # the last weight changes: fine-tuned, not the official file
    params.write_bytes(bytes(data))
    with pytest.raises(DictionaryError, match="no dictionary fits"):
        convert(renamed)


def test_wrong_explicit_dictionary_is_refused(shared_dir):
    folder = shared_dir / "paddle_models" / "french_mobile_v2.0_rec_infer"
    with pytest.raises(DictionaryError, match="does not fit"):
        convert(folder, "ch_ppocr_mobile_v2.0_rec", dictionary=DICTS / "german_dict.txt")
    with pytest.raises(DictionaryError):  # french_dict.txt ends with " ": a second space is one too many
        convert(folder, "ch_ppocr_mobile_v2.0_rec", dictionary=DICTS / "french_dict.txt", use_space_char=True)


# PaddleOCR 2.10's german_dict.txt / ru_dict.txt are one class short of these heads: each
# has two characters fused on one line ("p\t", "ы "). Split back, they fit and read the
# words right; the fused files are off by one after that line.
_SPLIT = {
    "german": ("german_dict.txt", "p\t", ["p", "\t"], "words/german/1.jpg", "leider auch jetzt"),
    "ru": ("ru_dict.txt", "ы ", ["ы", " "], "words/russia/ru_2.jpg", "пастушьим"),
}


@pytest.mark.parametrize("lang", sorted(_SPLIT))
def test_split_dictionary_reads_words(shared_dir, tmp_path, lang):
    from verification.parity import single_inputs
    from ptocr.postprocess import CTCLabelDecode

    name, fused, split, image, text = _SPLIT[lang]
    lines = (DICTS / name).read_text(encoding="utf-8").split("\n")
    i = lines.index(fused)
    lines[i : i + 1] = split
    dic = tmp_path / name
    dic.write_text("\n".join(lines), encoding="utf-8")
    conv = convert(shared_dir / "paddle_models" / f"{lang}_mobile_v2.0_rec_infer", dictionary=dic)
    assert conv.arch_name == "ch_ppocr_mobile_v2.0_rec" and conv.dictionary.num_classes == conv.model.head.fc.out_features
    ((_, x),) = single_inputs(conv.config, [shared_dir / "images" / image])
    with torch.no_grad():
        probs = conv.model.eval()(torch.from_numpy(x)).numpy()
    assert CTCLabelDecode(conv.dictionary.classes)(probs)[0][0] == text
