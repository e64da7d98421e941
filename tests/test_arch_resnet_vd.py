"""ResNet-vd architectures: ch_ppocr_server_v2.0_det (ResNet18_vd + DBFPN + DBHead) and
ch_ppocr_server_v2.0_rec (rec ResNet34_vd + BiLSTM + CTC).

Program tests use the real PaddleOCR programs of ``<shared>/paddle_graphs`` with seeded
(uncalibrated) weights: each converts without ``--arch`` to the expected architecture and
runs to the expected output shape. Parity against Paddle is the parity suite's job.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from ptocr.architectures import get_architecture
from ptocr.errors import ArchitectureError
from ptocr.models.backbones.resnet_vd import ResNet_vd, ResNet_vd_rec
from ptocr.models.build import build_model

DET, REC = "ch_ppocr_server_v2.0_det", "ch_ppocr_server_v2.0_rec"
PROGRAMS = {"ch_ppocr_server_v2.0_det_infer": DET, "ch_ppocr_server_v2.0_rec_infer": REC}


def program_dir(shared_dir: Path, name: str) -> Path:
    d = shared_dir / "paddle_graphs" / name
    if not (d / "inference.pdmodel").is_file():
        pytest.skip(f"program not found: {d}")
    return d


def info_names(folder: Path) -> set[str]:
    with open(folder / "inference.pdiparams.info", "rb") as f:
        return {v["structured_name"] for v in pickle.load(f).values()}


def paddle_spelling(model: torch.nn.Module) -> set[str]:
    return {
        k.replace("running_mean", "_mean").replace("running_var", "_variance")
        for k in model.state_dict()
        if not k.endswith("num_batches_tracked")
    }


def with_form(arch: str, form: str | None) -> dict:
    entry = get_architecture(arch)
    cfg = entry["model"]
    for part, args in (entry.get("forms", {}).get("head", {}).get(form, {}) if form else {}).items():
        cfg[part].update(args)
    return cfg


# ---------------------------------------------------------------- the backbones alone


def test_rec_backbone_keeps_the_width():
    bb = ResNet_vd_rec(layers=34).eval()
    assert bb.out_channels == 512
    assert [len(n) for n in bb.stage_names] == [3, 4, 6, 3]
    with torch.no_grad():
        y = bb(torch.randn(2, 3, 32, 320))
    # Height 32 -> 1 (stem pool /2, three (2, 1) stages, final 2x2 pool), width 320 -> 80.
    assert tuple(y.shape) == (2, 512, 1, 80)
    # Stage-opening shortcuts pool (2, 1) then run a stride-1 1x1 conv; the very first block
    # projects (64 -> 64) without pooling.
    assert not hasattr(bb.bb_0_0.short, "_pool2d_avg") and bb.bb_0_0.short._conv.stride == (1, 1)
    for s in (1, 2, 3):
        short = getattr(bb, f"bb_{s}_0").short
        assert short._pool2d_avg.kernel_size == (2, 1) and short._pool2d_avg.ceil_mode
        assert short._conv.stride == (1, 1)
        assert getattr(bb, f"bb_{s}_0").conv0._conv.stride == (2, 1)
        assert getattr(bb, f"bb_{s}_1").short is None


def test_det_backbone_pyramid_and_odd_sizes():
    bb = ResNet_vd(layers=18).eval()
    assert bb.out_channels == [64, 128, 256, 512]
    with torch.no_grad():
        feats = bb(torch.randn(1, 3, 96, 160))
        assert [tuple(f.shape) for f in feats] == [
            (1, 64, 24, 40), (1, 128, 12, 20), (1, 256, 6, 10), (1, 512, 3, 5)]
        # Odd sizes: the ceil-mode average pool of the shortcut must land on the strided
        # conv's size, or the residual add fails.
        feats = bb(torch.randn(1, 3, 99, 141))
    assert [tuple(f.shape[2:]) for f in feats] == [(25, 36), (13, 18), (7, 9), (4, 5)]


def test_backbone_options():
    with torch.device("meta"):  # structure only
        assert ResNet_vd(layers=50).out_channels == [256, 512, 1024, 2048]
        assert ResNet_vd(layers=18, out_indices=[2, 3]).out_channels == [256, 512]
        rec50 = ResNet_vd_rec(layers=50)
    assert rec50.out_channels == 2048
    assert rec50.bb_2_0.short._pool2d_avg.kernel_size == (2, 1)
    assert rec50.bb_2_0.conv2._conv.out_channels == 1024
    with pytest.raises(ArchitectureError, match="layers"):
        ResNet_vd(layers=20)
    with pytest.raises(ArchitectureError, match="out_indices"):
        ResNet_vd(layers=18, out_indices=[4])


def test_full_models_output_shapes():
    det = build_model(with_form(DET, "inference head")).eval()
    rec = build_model(get_architecture(REC)["model"]).eval()
    assert det.neck.out_channels == 256 and det.head.k == 50
    with torch.no_grad():
        prob = det(torch.randn(1, 3, 128, 96))
        p = rec(torch.randn(1, 3, 32, 320))
    assert tuple(prob.shape) == (1, 1, 128, 96)
    assert tuple(p.shape) == (1, 80, 6625)
    assert torch.allclose(p.sum(-1), torch.ones(1, 80), atol=1e-4)


# ---------------------------------------------------------------- the real programs


def test_program_facts_match_the_backbones(shared_dir):
    """The pooling the modules assume, read from the programs' ops."""
    from converter.readers.program import read_program

    def pools(name):
        ops = read_program(program_dir(shared_dir, name) / "inference.pdmodel").ops
        return [o.attrs for o in ops if o.type == "pool2d"]

    def key(a):
        return (a["pooling_type"], list(a["ksize"]), list(a["strides"]), list(a["paddings"]),
                bool(a["ceil_mode"]), bool(a["exclusive"]))

    stem = ("max", [3, 3], [2, 2], [1, 1], False, True)
    assert [key(a) for a in pools("ch_ppocr_server_v2.0_det_infer")] == [
        stem] + [("avg", [2, 2], [2, 2], [0, 0], True, True)] * 3
    assert [key(a) for a in pools("ch_ppocr_server_v2.0_rec_infer")] == [
        stem] + [("avg", [2, 1], [2, 1], [0, 0], True, True)] * 3 + [
        ("max", [2, 2], [2, 2], [0, 0], False, True)]


@pytest.mark.parametrize("name, form", [
    ("ch_ppocr_server_v2.0_rec_infer", None),
    # The det program's .info also lists the training-only threshold branch.
    ("ch_ppocr_server_v2.0_det_infer", "training head"),
])
def test_structured_names_are_the_modules_names(shared_dir, name, form):
    model = build_model(with_form(PROGRAMS[name], form), device="meta")
    assert paddle_spelling(model) == info_names(program_dir(shared_dir, name))


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_program_converts_without_arch(shared_dir, tmp_path, name):
    from converter.convert import convert
    from verification.seeding import seed_folder

    folder = seed_folder(program_dir(shared_dir, name), tmp_path / name)
    conv = convert(folder, None)
    assert conv.arch_name == PROGRAMS[name]
    assert not conv.mapping.dropped
    model = conv.model.eval()
    with torch.no_grad():
        if conv.arch_name == DET:
            assert conv.form == "inference head" and model.head.thresh is None
            out = model(torch.randn(1, 3, 64, 96))
            assert tuple(out.shape) == (1, 1, 64, 96)
        else:
            assert conv.config["model"]["head"]["num_classes"] == 6625
            assert conv.dictionary.num_classes == 6625
            out = model(torch.randn(1, 3, 32, 320))
            assert tuple(out.shape) == (1, 80, 6625)


def test_det_training_checkpoint_converts_with_the_threshold_branch(shared_dir, tmp_path):
    """A training checkpoint (structured names, as ``paddle.save(model.state_dict())`` writes)
    holds the threshold branch the inference program drops: it must convert, without
    ``--arch``, to the training-head form and train-forward to PaddleOCR's 3 maps."""
    import numpy as np

    from converter.convert import convert
    from converter.readers import read_source
    from verification.seeding import seed_folder

    folder = seed_folder(program_dir(shared_dir, "ch_ppocr_server_v2.0_det_infer"), tmp_path / "seeded")
    tensors = dict(read_source(folder).tensors)
    rng = np.random.default_rng(0)
    for k in [k for k in tensors if k.startswith("head.binarize.")]:
        v = tensors[k]
        tensors[k.replace("binarize", "thresh")] = (v + 0.01 * rng.standard_normal(v.shape)).astype(v.dtype)
    assert {k for k in tensors} == info_names(folder)
    ckpt = tmp_path / "train" / "best_accuracy.pdparams"
    ckpt.parent.mkdir()
    ckpt.write_bytes(pickle.dumps(tensors, protocol=4))

    conv = convert(ckpt, None)
    assert (conv.arch_name, conv.form) == (DET, "training head")
    model = conv.model.train()
    out = model(torch.randn(2, 3, 64, 64))["maps"]
    assert tuple(out.shape) == (2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        assert tuple(model(torch.randn(1, 3, 64, 64)).shape) == (1, 1, 64, 64)


# PaddleX's PP-OCRv3_server_det: no Paddle program of it in ../shared, so PaddleOCR's own network
# exported without weights (tools/export_ppocrv3_server_det_program.py); the parity suite runs it.
V3_SERVER_DET = "PP-OCRv3_server_det"
V3_SERVER_PROGRAM = Path(__file__).parent / "fixtures" / "paddle_graphs" / f"{V3_SERVER_DET}_infer"


def test_v3_server_det_is_resnet50_vd_lkpan_and_a_7x7_db_head():
    model = build_model(get_architecture(V3_SERVER_DET)["model"], device="meta")
    assert model.backbone.out_channels == [256, 512, 1024, 2048]
    assert type(model.neck).__name__ == "LKPAN" and not model.neck.intracl
    assert tuple(model.head.binarize.conv1.weight.shape) == (64, 256, 7, 7)
    assert model.head.binarize.conv1.padding == (3, 3)
    assert tuple(model.head.thresh.conv1.weight.shape) == (64, 256, 7, 7)  # the training branch too
    assert tuple(model.head.add_threshold_branch().conv2.weight.shape) == (64, 64, 2, 2)


def test_v3_server_det_program_converts_by_its_name_alone(tmp_path):
    """The exported program, seeded, converts without --arch (its inference.yml names it) with every
    parameter placed by the graph; asked to be the v2.0 server det (ResNet18_vd, DBFPN, 3x3 head), it
    is refused, naming what it is."""
    pytest.importorskip("paddle")
    from converter.convert import convert
    from verification.seeding import seed_folder

    folder = seed_folder(V3_SERVER_PROGRAM, tmp_path / f"{V3_SERVER_DET}_infer")
    conv = convert(folder, None)
    assert (conv.arch_name, conv.form) == (V3_SERVER_DET, "inference head")
    assert not conv.source.structured and not conv.mapping.dropped
    with torch.no_grad():
        assert tuple(conv.model.eval()(torch.randn(1, 3, 64, 96)).shape) == (1, 1, 64, 96)
    with pytest.raises(ArchitectureError, match=f"it is {V3_SERVER_DET}"):
        convert(folder, DET)
