"""PP-HGNet server models: PP-OCRv4 server det and rec (PPHGNet_small) and PP-OCRv5 server
det and rec (PPHGNetV2_B4). The real programs (seeded) convert to the registered
architectures without being told which; module shapes; parameter names against the v4
programs' ``.pdiparams.info`` (training-only branches included) and parameter shapes, in
creation order, against the v5 Paddle 3 programs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ptocr.architectures import get_architecture
from ptocr.errors import ArchitectureError
from ptocr.models.backbones.hgnet import PPHGNet
from ptocr.models.build import build_model
from ptocr.models.heads.pfhead_local import PFHeadLocal
from ptocr.models.necks.lkpan import LKPAN

DET, REC = "ch_PP-OCRv4_server_det", "ch_PP-OCRv4_server_rec"
PROGRAMS = {DET: "ch_PP-OCRv4_server_det_infer", REC: "ch_PP-OCRv4_server_rec_infer"}


def program_dir(shared_dir: Path, arch: str) -> Path:
    d = shared_dir / "paddle_graphs" / PROGRAMS[arch]
    if not (d / "inference.pdmodel").is_file():
        pytest.skip(f"program {d} not found")
    return d


def info_shapes(folder: Path) -> dict[str, tuple[int, ...] | None]:
    """structured name -> shape in the program (None: listed in .info, not held)."""
    from converter.readers.pdparams import read_info
    from converter.readers.program import read_program

    info = read_info(folder / "inference.pdiparams.info")  # program name -> structured name
    held = {v.name: tuple(v.shape) for v in read_program(folder / "inference.pdmodel").parameters()}
    return {structured: held.get(name) for name, structured in info.items()}


def torch_shapes(model_cfg: dict) -> dict[str, tuple[int, ...]]:
    """Target keys (Linear weights spelled [in, out] as Paddle stores them) -> shape."""
    model = build_model(model_cfg, device="meta")
    linear = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    return {k: tuple(t.shape)[::-1] if k in linear else tuple(t.shape)
            for k, t in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def mapped(shapes: dict, family: str) -> dict[str, tuple[int, ...] | None]:
    """The .info names through the family's table (dropped names left out)."""
    from converter.mapping import plan
    from converter.tables import get_table

    return {m.target: shapes[m.source] for m in plan(shapes, get_table(family)) if m.target is not None}


# ---------------------------------------------------------------- modules


def test_det_backbone_levels():
    bb = PPHGNet(det=True).eval()
    assert bb.out_channels == [256, 512, 768, 1024]
    with torch.no_grad():
        outs = bb(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [
        (1, 256, 16, 24), (1, 512, 8, 12), (1, 768, 4, 6), (1, 1024, 2, 3)]
    # Stage 1 of the detector has no downsample (the stem's max pool did it).
    assert bb.stages[0].downsample is None
    assert all(s.downsample is not None for s in bb.stages[1:])


def test_rec_backbone_pools_to_height_one():
    bb = PPHGNet(det=False).eval()
    assert bb.out_channels == 1024
    with torch.no_grad():
        assert tuple(bb(torch.randn(2, 3, 48, 320)).shape) == (2, 1024, 1, 40)
        assert tuple(bb(torch.randn(1, 3, 48, 160)).shape) == (1, 1024, 1, 20)
    bb.train()
    # Training pools adaptively to 1 x 40 whatever the width (PaddleOCR's training path).
    assert tuple(bb(torch.randn(1, 3, 48, 200)).shape) == (1, 1024, 1, 40)


def test_hg_block_identity_only_after_the_first():
    bb = PPHGNet(det=False)
    flags = [[b.identity for b in s.blocks] for s in bb.stages]
    assert flags == [[False], [False], [False, True], [False]]
    assert bb.stages[0].downsample.conv.stride == (2, 1)
    assert bb.stages[1].downsample.conv.stride == (1, 2)


def test_lkpan_output_and_intracl():
    neck = LKPAN([256, 512, 768, 1024], 256, intracl=True).eval()
    feats = [torch.randn(1, c, 16 // 2**i, 24 // 2**i) for i, c in enumerate([256, 512, 768, 1024])]
    with torch.no_grad():
        assert tuple(neck(feats).shape) == (1, 256, 16, 24)
    assert neck.incl1.conv1x1_reduce_channel.weight.shape == (32, 64, 1, 1)
    plain = LKPAN([256, 512, 768, 1024], 256)
    assert not any(k.startswith("incl") for k in plain.state_dict())
    assert plain.inp_conv[0].weight.shape == (64, 256, 9, 9)
    assert len(plain.pan_head_conv) == 3


def test_pfhead_local_outputs():
    torch.manual_seed(0)
    x = torch.randn(2, 256, 8, 12)
    cbn = PFHeadLocal(256, mode="large", with_thresh=False).eval()
    both = PFHeadLocal(256, mode="large", with_thresh=False, output="both").eval()
    both.load_state_dict(cbn.state_dict())
    with torch.no_grad():
        c = cbn(x)
        c2, mean = both(x)
        shrink = cbn.binarize(x)
    assert tuple(c.shape) == (2, 1, 32, 48)
    torch.testing.assert_close(c, c2)
    torch.testing.assert_close(mean, 0.5 * (shrink + c))
    # "large": the local module keeps C/4 channels, "small" halves it.
    assert cbn.cbn_layer.last_3.conv.weight.shape == (64, 65, 3, 3)
    assert PFHeadLocal(256, mode="small").cbn_layer.last_3.conv.weight.shape == (32, 65, 3, 3)
    train = PFHeadLocal(256, mode="large").train()
    out = train(x)
    assert tuple(out["maps"].shape) == (2, 3, 32, 48)
    with pytest.raises(ArchitectureError, match="threshold"):
        PFHeadLocal(256, with_thresh=False).train()(x)


# ---------------------------------------------------------------- against the real programs


def test_det_names_match_the_program_info_in_both_forms(shared_dir):
    """The training form holds exactly the .info names (head.thresh included); the
    inference form exactly those the program holds, with the program's shapes."""
    spec = get_architecture(DET)
    got = mapped(info_shapes(program_dir(shared_dir, DET)), spec["family"])
    head = spec["model"]["head"]
    train = torch_shapes({**spec["model"], "head": {**head, "with_thresh": True}})
    infer = torch_shapes({**spec["model"], "head": {**head, "with_thresh": False}})
    assert set(train) == set(got)
    assert {k for k, s in got.items() if s is None} == set(train) - set(infer)
    assert all(k.startswith("head.thresh.") for k in set(train) - set(infer))
    assert infer == {k: s for k, s in got.items() if s is not None}


def test_rec_names_match_the_program_info(shared_dir):
    """Through the mapping table, MultiHead's CTC branch is exactly our neck + head; only
    the NRTR (GTC) branch is dropped, and the program does not hold it."""
    from converter.mapping import plan
    from converter.tables import get_table

    spec = get_architecture(REC)
    shapes = info_shapes(program_dir(shared_dir, REC))
    dropped = [m.source for m in plan(shapes, get_table(spec["family"])) if m.target is None]
    assert dropped and all(n.startswith(("head.gtc_head.", "head.before_gtc.")) for n in dropped)
    assert all(shapes[n] is None for n in dropped)
    assert mapped(shapes, spec["family"]) == torch_shapes(spec["model"])


@pytest.mark.parametrize("arch", [DET, REC])
def test_seeded_program_converts_without_arch(shared_dir, tmp_path, arch):
    from converter.convert import convert
    from verification.seeding import seed_folder

    folder = seed_folder(program_dir(shared_dir, arch), tmp_path / arch)
    conv = convert(folder, None)
    assert conv.arch_name == arch
    model = conv.model.eval()
    with torch.no_grad():
        if arch == DET:
            assert conv.form == "inference head"
            assert tuple(model(torch.randn(1, 3, 64, 96)).shape) == (1, 1, 64, 96)
        else:
            assert conv.dictionary.num_classes == 6625
            p = model(torch.randn(2, 3, 48, 160))
            assert tuple(p.shape) == (2, 20, 6625)
            torch.testing.assert_close(p.sum(-1), torch.ones(2, 20))


# ---------------------------------------------------------------- PP-HGNetV2 (PP-OCRv5 server)

V5 = {"det": ("PP-OCRv5_server_det_infer", {"det": True}),
      "rec": ("PP-OCRv5_server_rec_infer", {"text_rec": True})}


def v5_backbone_params(shared_dir: Path, task: str):
    """The program's parameters first read by a PPHGNetV2 op, by kind, in creation order
    (Paddle numbers each layer kind's parameters as it builds them: ``conv2d_<n>.w_0``)."""
    import re

    from converter.readers.pir import read_pir_program

    path = shared_dir / "paddle_graphs" / V5[task][0] / "inference.json"
    if not path.is_file():
        pytest.skip(f"program {path} not found")
    prog = read_pir_program(path)
    by_value = prog.param_by_value()
    first: dict[int, str] = {}
    for op in prog.ops:
        for v in op.inputs:
            if v in by_value and v not in first:
                first[v] = op.struct_name
    params = [by_value[v] for v, s in first.items() if s.startswith("/PPHGNetV2/")]

    def ordered(kind):
        found = [(int(m.group(1)), p.shape) for p in params
                 if (m := re.fullmatch(kind + r"_(\d+)\.w_0", p.name))]
        return [shape for _, shape in sorted(found)]

    return params, ordered("conv2d"), ordered("batch_norm2d")


@pytest.mark.parametrize("task", ["det", "rec"])
def test_pphgnetv2_b4_matches_the_v5_server_program(shared_dir, task):
    from ptocr.models.backbones.hgnet import PPHGNetV2

    params, convs, bns = v5_backbone_params(shared_dir, task)
    model = PPHGNetV2(**V5[task][1])
    keys = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    assert len(keys) == len(params)  # conv weights + 4 tensors per BN, nothing else
    assert [tuple(m.weight.shape) for m in model.modules() if isinstance(m, torch.nn.Conv2d)] == convs
    assert [(m.num_features,) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)] == bns


def test_pphgnetv2_b4_shapes():
    from ptocr.models.backbones.hgnet import PPHGNetV2

    det = PPHGNetV2(det=True).eval()
    rec = PPHGNetV2(text_rec=True).eval()
    assert det.out_channels == [128, 512, 1024, 2048] and rec.out_channels == 2048
    with torch.no_grad():
        assert [tuple(o.shape) for o in det(torch.randn(1, 3, 64, 96))] == [
            (1, 128, 16, 24), (1, 512, 8, 12), (1, 1024, 4, 6), (1, 2048, 2, 3)]
        assert tuple(rec(torch.randn(2, 3, 48, 320)).shape) == (2, 2048, 1, 40)
    # Paddle 'SAME' for the 2x2 stem convs: nothing before, one pixel after.
    assert det.stem.stem2a.pad.padding == (0, 1, 0, 1)
    assert det.stem.stem3.conv.stride == (2, 2) and rec.stem.stem3.conv.stride == (1, 1)


@pytest.mark.parametrize("task", ["det", "rec"])
def test_seeded_v5_server_program_converts_without_arch(shared_dir, tmp_path, task):
    from converter.convert import convert
    from converter.readers import read_source
    from verification.seeding_pir import seed_folder

    src = shared_dir / "paddle_graphs" / V5[task][0]
    if not (src / "inference.json").is_file():
        pytest.skip(f"program {src} not found")
    folder = seed_folder(src, tmp_path / task)
    dictionary = None
    if task == "rec":
        dictionary = tmp_path / "dict.txt"
        dictionary.write_text("".join(c + "\n" for c in read_source(folder).dictionary), encoding="utf-8")
    conv = convert(folder, None, dictionary=dictionary)
    assert conv.arch_name == f"PP-OCRv5_server_{task}"
    with torch.no_grad():
        if task == "det":
            assert conv.form == "inference head"
            assert tuple(conv.model.eval()(torch.randn(1, 3, 64, 96)).shape) == (1, 1, 64, 96)
        else:
            assert conv.config["model"]["head"]["num_classes"] == conv.dictionary.num_classes == 18385
            assert tuple(conv.model.eval()(torch.randn(1, 3, 48, 160)).shape) == (1, 20, 18385)
