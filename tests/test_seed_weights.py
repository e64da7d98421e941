"""tools/seed_weights.py: calibrated seeded weights beside a real program, either kind.

The parity suite seeds every program of ../shared/paddle_graphs through the same recipe
(``verification.seeding.seed_and_calibrate``); the tool is how a user seeds one by hand, so
it must take a Paddle 2 program and a Paddle 3 (PIR) one alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from converter.convert import convert
from tools.seed_weights import main
from verification.parity import single_inputs
from verification.seeding import CALIBRATION_INPUTS, seed_folder


def _log_prob_spread(folder: Path, images: list[Path]) -> float:
    """Mean over rows of the std of log-probabilities: the logits' spread within a row
    (log-softmax only shifts a row). Raw seeded weights give a near-uniform softmax."""
    conv = convert(folder, None)
    model = conv.model.eval()
    with torch.no_grad():
        rows = [model(torch.from_numpy(x)).log().std(-1).mean() for _, x in single_inputs(conv.config, images)]
    return float(torch.stack(rows).mean())


@pytest.mark.parametrize("program", ["PP-LCNet_x1_0_textline_ori", "ch_ppocr_mobile_v2.0_rec_infer"],
                         ids=["paddle3_pir_cls", "paddle2_rec"])
def test_seed_weights_calibrates_both_program_kinds(shared_dir, tmp_path, program):
    src = shared_dir / "paddle_graphs" / program
    if not src.is_dir():
        pytest.skip(f"{src} not in the shared data")
    words = shared_dir / "images" / "words" / "ch"
    assert main([str(src), str(tmp_path / "calibrated"), "--images", str(words)]) == 0
    record = json.loads((tmp_path / "calibrated" / "seeding.json").read_text())
    assert record["calibrated"] and record["calibration_inputs"] == CALIBRATION_INPUTS
    assert record["output"] == "softmax"
    seed_folder(src, tmp_path / "raw")
    images = sorted(p for p in words.iterdir() if p.suffix == ".jpg")[:3]
    raw, calibrated = _log_prob_spread(tmp_path / "raw", images), _log_prob_spread(tmp_path / "calibrated", images)
    # Calibration written back under the program's names: the converted folder reads it.
    assert calibrated > 3 * raw, (raw, calibrated)


def test_seed_weights_names_a_folder_without_a_program(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a.jpg").write_bytes(b"")
    assert main([str(tmp_path / "empty"), str(tmp_path / "out"), "--images", str(tmp_path / "a.jpg")]) == 2
    err = capsys.readouterr().err
    assert "empty" in err and "inference.pdmodel or inference.json" in err
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_seed_weights_leaves_nothing_when_conversion_fails(shared_dir, tmp_path, capsys):
    """Seeded but uncalibrated weights are never left behind (the parity suite would reuse them)."""
    src = shared_dir / "paddle_graphs" / "ch_ppocr_mobile_v2.0_rec_infer"
    if not src.is_dir():
        pytest.skip(f"{src} not in the shared data")
    words = shared_dir / "images" / "words" / "ch"
    out = tmp_path / "seeded" / "ch_ppocr_mobile_v2.0_rec_infer"
    assert main([str(src), str(out), "--images", str(words), "--arch", "ch_ppocr_mobile_v2.0_det"]) == 2
    assert "error:" in capsys.readouterr().err
    assert not out.exists() and not list((tmp_path / "seeded").iterdir())


def _small_bn_net() -> torch.nn.Module:
    torch.manual_seed(0)
    layers = []
    for cin, cout in ((3, 8), (8, 8), (8, 4)):
        layers += [torch.nn.Conv2d(cin, cout, 3, padding=1), torch.nn.BatchNorm2d(cout), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers).eval()


def test_lockstep_calibration_equals_rerunning_each_layer():
    """All inputs run at once, halted at each batch norm: the statistics are bit-identical to
    rerunning every input up to each batch norm in turn (the definition), sizes differing."""
    from verification.seeding import _set_batch_norm, _set_batch_norms_in_lockstep

    xs = [torch.rand(1, 3, 16, 24) * 3, torch.rand(2, 3, 20, 12) - 1, torch.rand(1, 3, 8, 8)]
    reference, lockstep = _small_bn_net(), _small_bn_net()
    for bn in [m for m in reference if isinstance(m, torch.nn.BatchNorm2d)]:
        seen = []
        hook = bn.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
        with torch.no_grad():
            for x in xs:
                reference(x)
        hook.remove()
        _set_batch_norm(bn, seen[: len(xs)])
    _set_batch_norms_in_lockstep(lockstep, [m for m in lockstep if isinstance(m, torch.nn.BatchNorm2d)], xs)
    for a, b in zip(reference.state_dict().values(), lockstep.state_dict().values()):
        assert torch.equal(a, b)
    assert not any(m._forward_pre_hooks for m in lockstep), "hooks left behind"


def test_lockstep_calibration_reports_a_failing_input_without_hanging():
    from verification.seeding import _set_batch_norms_in_lockstep

    net = _small_bn_net()
    bns = [m for m in net if isinstance(m, torch.nn.BatchNorm2d)]
    with pytest.raises(RuntimeError, match="channels"):  # the conv's own error, not a broken barrier
        _set_batch_norms_in_lockstep(net, bns, [torch.rand(1, 3, 8, 8), torch.rand(1, 5, 8, 8)])
    assert not any(m._forward_pre_hooks for m in net)


@pytest.mark.parametrize("program, branches", [("PP-OCRv5_server_det_infer", 2), ("ch_PP-OCRv4_server_det_infer", 1),
                                               ("ch_ppocr_mobile_v2.0_rec_infer", 1)])
def test_every_output_activation_is_calibrated(shared_dir, program, branches):
    """A head that averages two sigmoid maps (PaddleOCR 3.x's PFHeadLocal export) has both
    calibrated: left alone, the average sits near 0.5, every pixel above the DB threshold, and
    the parity suite's binarized maps and boxes would agree trivially. (The Paddle 2 v4 export
    fetches the second map alone.)"""
    from converter.readers.pir import read_pir_program
    from converter.readers.program import read_program
    from verification.seeding import output_layers

    src = shared_dir / "paddle_graphs" / program
    if not src.is_dir():
        pytest.skip(f"{src} not in the shared data")
    pdmodel = src / "inference.pdmodel"
    found = output_layers(read_program(pdmodel) if pdmodel.is_file() else read_pir_program(src / "inference.json"))
    kind = "softmax" if "_rec" in program else "sigmoid"
    assert [k for k, _ in found] == [kind] * branches
    assert len({w for _, w in found}) == branches  # distinct layers
