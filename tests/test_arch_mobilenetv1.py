"""MobileNetV1Enhance recognizers: ch_PP-OCRv2_rec and ch_PP-OCRv3_rec (SVTR-LCNet, also the
network of every PP-OCRv3 language recognizer).

Program tests use the real PaddleOCR programs of ``<shared>/paddle_graphs`` with seeded
(uncalibrated) weights: each converts without ``--arch`` to the expected architecture, with
the class count of its PaddleOCR dictionary, and runs to the expected output shape. Parity
against Paddle is the parity suite's job.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

import ptocr
from ptocr.architectures import get_architecture
from ptocr.dictionary import builtin_dictionary
from ptocr.errors import ArchitectureError
from ptocr.models.backbones.mobilenetv1_enhance import MobileNetV1Enhance
from ptocr.models.build import build_model

DICTS = Path(ptocr.__file__).parent / "dicts"

# program folder -> (architecture, PaddleOCR dictionary, class count in the program's head)
PROGRAMS = {
    "ch_PP-OCRv2_rec_infer": ("ch_PP-OCRv2_rec", "ppocr_keys_v1.txt", 6625),
    "ch_PP-OCRv3_rec_infer": ("ch_PP-OCRv3_rec", "ppocr_keys_v1.txt", 6625),
    "en_PP-OCRv3_rec_infer": ("ch_PP-OCRv3_rec", "en_dict.txt", 97),
    "arabic_PP-OCRv3_rec_infer": ("ch_PP-OCRv3_rec", "arabic_dict.txt", 163),
    "chinese_cht_PP-OCRv3_rec_infer": ("ch_PP-OCRv3_rec", "chinese_cht_dict.txt", 8423),
    "cyrillic_PP-OCRv3_rec_infer": ("ch_PP-OCRv3_rec", "cyrillic_dict.txt", 165),
    "devanagari_PP-OCRv3_rec_infer": ("ch_PP-OCRv3_rec", "devanagari_dict.txt", 169),
    "japan_PP-OCRv3_rec_infer": ("ch_PP-OCRv3_rec", "japan_dict.txt", 4401),
    "ka_PP-OCRv3_rec_infer": ("ch_PP-OCRv3_rec", "ka_dict.txt", 155),
    "korean_PP-OCRv3_rec_infer": ("ch_PP-OCRv3_rec", "korean_dict.txt", 3690),
    "latin_PP-OCRv3_rec_infer": ("ch_PP-OCRv3_rec", "latin_dict.txt", 187),
    "ta_PP-OCRv3_rec_infer": ("ch_PP-OCRv3_rec", "ta_dict.txt", 130),
    "te_PP-OCRv3_rec_infer": ("ch_PP-OCRv3_rec", "te_dict.txt", 153),
}
V3_PROGRAMS = [p for p, (arch, _, _) in PROGRAMS.items() if arch == "ch_PP-OCRv3_rec"]

# architecture -> (input height, output time steps for a 320-pixel-wide line)
SEQUENCE = {"ch_PP-OCRv2_rec": (32, 80), "ch_PP-OCRv3_rec": (48, 40)}


def program_dir(shared_dir: Path, name: str) -> Path:
    d = shared_dir / "paddle_graphs" / name
    if not (d / "inference.pdmodel").is_file():
        pytest.skip(f"program not found: {d}")
    return d


def structured(folder: Path) -> dict[str, tuple[int, ...] | None]:
    """Structured name -> shape in the program (None: listed in .info, not held by the program)."""
    from converter.readers.program import read_program

    shapes = {v.name: v.shape for v in read_program(folder / "inference.pdmodel").parameters()}
    with open(folder / "inference.pdiparams.info", "rb") as f:
        info = pickle.load(f)
    return {v["structured_name"]: shapes.get(k) for k, v in info.items()}


# ---------------------------------------------------------------- the backbone alone


@pytest.mark.parametrize("arch", sorted(SEQUENCE))
def test_backbone_output_map(arch):
    cfg = get_architecture(arch)["model"]["backbone"]
    cfg.pop("name")
    bb = MobileNetV1Enhance(**cfg).eval()
    height, steps = SEQUENCE[arch]
    assert get_architecture(arch)["preprocess"]["image_shape"] == [3, height, 320]
    with torch.no_grad():
        y = bb(torch.randn(2, 3, height, 320))
    assert bb.out_channels == 512
    assert tuple(y.shape) == (2, 512, 1, steps)


def test_backbone_structure():
    v2 = MobileNetV1Enhance(scale=0.5)
    v3 = MobileNetV1Enhance(scale=0.5, last_conv_stride=[1, 2], last_pool_type="avg")
    assert len(v2.block_list) == len(v3.block_list) == 13
    # SE only in the last two blocks, gated by Paddle's default hard_sigmoid slope (1/6).
    assert [b.use_se for b in v2.block_list] == [False] * 11 + [True] * 2
    assert v2.block_list[-1]._se.slope == pytest.approx(1 / 6, abs=1e-6)
    assert v2.block_list[-1]._depthwise_conv._conv.stride == (1, 1)
    assert v3.block_list[-1]._depthwise_conv._conv.stride == (1, 2)
    assert isinstance(v2.pool, torch.nn.MaxPool2d) and isinstance(v3.pool, torch.nn.AvgPool2d)
    # Width multiplier: int(c * scale), stem 16 channels at x0.5.
    assert v2.conv1._conv.out_channels == 16
    assert MobileNetV1Enhance(scale=1.0).out_channels == 1024
    with pytest.raises(ArchitectureError, match="last_pool_type"):
        MobileNetV1Enhance(last_pool_type="min")


def test_eval_outputs_are_probabilities():
    m = build_model(get_architecture("ch_PP-OCRv2_rec")["model"]).eval()
    with torch.no_grad():
        p = m(torch.randn(1, 3, 32, 160))
    assert tuple(p.shape) == (1, 40, 6625)
    assert torch.allclose(p.sum(-1), torch.ones(1, 40), atol=1e-5)


# ---------------------------------------------------------------- the real programs


def test_program_facts_match_the_architectures(shared_dir):
    """What the entries assume, read from the programs' ops: last pooling, SE gate, LSTM width."""
    from converter.readers.program import read_program

    def ops(name):
        return read_program(program_dir(shared_dir, name) / "inference.pdmodel").ops

    v2, v3 = ops("ch_PP-OCRv2_rec_infer"), ops("ch_PP-OCRv3_rec_infer")
    for prog, pool in ((v2, "max"), (v3, "avg")):
        last_pool = [o for o in prog if o.type == "pool2d" and not o.attrs.get("adaptive")][-1]
        assert last_pool.attrs["pooling_type"] == pool and list(last_pool.attrs["ksize"]) == [2, 2]
        slopes = {round(float(o.attrs["slope"]), 6) for o in prog if o.type == "hard_sigmoid"}
        assert slopes == {round(1 / 6, 6)}
    (rnn,) = [o for o in v2 if o.type == "rnn"]
    assert (rnn.attrs["mode"], rnn.attrs["hidden_size"], rnn.attrs["num_layers"], rnn.attrs["is_bidirec"]) == (
        "LSTM", 64, 2, True)


def test_v3_language_programs_share_one_network(shared_dir):
    """Every PP-OCRv3 recognizer holds the same tensors as ch_PP-OCRv3_rec; only the class
    count of the CTC classifier differs."""
    ref = structured(program_dir(shared_dir, "ch_PP-OCRv3_rec_infer"))
    cls_keys = {"head.ctc_head.fc.weight", "head.ctc_head.fc.bias"}
    for name in V3_PROGRAMS:
        got = structured(program_dir(shared_dir, name))
        assert got.keys() == ref.keys(), name
        assert {k: v for k, v in got.items() if k not in cls_keys} == {
            k: v for k, v in ref.items() if k not in cls_keys}, name
        assert got["head.ctc_head.fc.weight"] == (64, PROGRAMS[name][2]), name


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_program_converts_without_arch(shared_dir, tmp_path, name):
    from converter.convert import convert
    from verification.seeding import seed_folder

    arch, dict_name, classes = PROGRAMS[name]
    folder = seed_folder(program_dir(shared_dir, name), tmp_path / name)
    conv = convert(folder, None, dictionary=DICTS / dict_name)
    assert conv.arch_name == arch
    assert conv.config["model"]["head"]["num_classes"] == classes
    assert conv.dictionary.num_classes == classes
    assert not [e.source for e in conv.mapping.dropped if not e.source.startswith("head.sar_head.")]
    height, steps = SEQUENCE[arch]
    with torch.no_grad():
        p = conv.model.eval()(torch.randn(1, 3, height, 320))
    assert tuple(p.shape) == (1, steps, classes)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_dictionary_fits_the_program(shared_dir, name):
    _, dict_name, classes = PROGRAMS[name]
    head = structured(program_dir(shared_dir, name))
    w = head.get("head.fc2.weight") or head["head.ctc_head.fc.weight"]
    assert w[-1] == classes
    builtin_dictionary(dict_name, True).check_fits(classes, name)


def test_wrong_dictionary_is_refused(shared_dir, tmp_path):
    from converter.convert import convert
    from converter.errors import DictionaryError
    from verification.seeding import seed_folder

    folder = seed_folder(program_dir(shared_dir, "en_PP-OCRv3_rec_infer"), tmp_path / "en")
    with pytest.raises(DictionaryError, match="does not fit"):
        convert(folder, "ch_PP-OCRv3_rec", dictionary=DICTS / "latin_dict.txt")
