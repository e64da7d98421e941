"""The converted models against their Paddle originals, on real inputs (the doc/parity.md rows).

Every suite entry is converted without ``--arch`` (the detected architecture must be the
expected one) and compared with Paddle: trained weights as released, real programs with
seeded, calibrated weights (verification.seeding).
"""

import dataclasses
import json
import os

import pytest

from verification.parity import EXACT_TOLERANCE, paddle_available
from verification.suite import report_row, run_entry, source_folder, suite


MIN_INPUT_SPREAD = 1e-2  # 100x the tolerance


@pytest.fixture(scope="module")
def paddle():
    if not paddle_available():
        if os.environ.get("CI"):
            pytest.fail("parity tests must run in CI: paddlepaddle is not installed (pip install -e '.[test]')")
        pytest.skip("paddlepaddle is not installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("seeded")


@pytest.mark.parametrize("entry", suite(), ids=[e.id for e in suite()])
def test_parity_against_paddle(shared_dir, paddle, workdir, entry):
    assert source_folder(shared_dir, entry).is_dir(), f"{entry.model} is missing from {shared_dir}"
    report = run_entry(entry, shared_dir, workdir)
    print(report.summary())
    if os.environ.get("PTOCR_PARITY_RECORD"):  # rows for tools/parity_report.py --from-record
        with open(os.environ["PTOCR_PARITY_RECORD"], "a", encoding="utf-8") as f:
            f.write(json.dumps(report_row(entry, report)) + "\n")
    _assert_within(entry, report)


# The default pipeline's models (ptocr demo, OCR.official), proven torch.compile'd as well, on
# fewer inputs (each new class of input shape compiles for 30-100 s on 2 cores): for det the
# first scene and the rounding-sensitive one (Paddle's own fp32 error 1.5e-4 there), for rec
# the Chinese crops of the common width (48 x 320: word_2's 620 is a third compilation).
COMPILED = {"ch_PP-OCRv4_det": ("scenes/00009282.jpg", "scenes/00059985.jpg"),
            "ch_PP-OCRv4_rec": tuple(f"words/ch/word_{i}.jpg" for i in (1, 3, 4, 5)),
            "ch_ppocr_mobile_v2.0_cls": None}


@pytest.mark.parametrize("entry", [e for e in suite() if e.model in COMPILED], ids=lambda e: e.id)
def test_compiled_parity_against_paddle(shared_dir, paddle, workdir, entry):
    """ptocr.load(..., compile=True): the "optimized" figures are the compiled model's."""
    if COMPILED[entry.model]:
        entry = dataclasses.replace(entry, images=COMPILED[entry.model], max_images=None)
    report = run_entry(entry, shared_dir, workdir, compiled=True)
    print(report.summary())
    _assert_within(entry, report)


# ptocr.load(..., shape_graphs=True), the opt-in for detectors and recognizers: the default
# pipeline's two, every input read through a graph of its shape (doc/design_figures.md: every
# shared non-LSTM detector and recognizer passed so, but for ch_PP-OCRv4_server_det's seeded weights).
SHAPE_GRAPHS = ("ch_PP-OCRv4_det", "ch_PP-OCRv4_rec")


@pytest.mark.filterwarnings("error:.*runs eager:RuntimeWarning")  # a refused graph would leave it eager
@pytest.mark.parametrize("entry", [e for e in suite() if e.model in SHAPE_GRAPHS], ids=lambda e: e.id)
def test_shape_graph_parity_against_paddle(shared_dir, paddle, workdir, entry):
    """The "optimized" figures are those of the model with shape graphs."""
    report = run_entry(entry, shared_dir, workdir, shape_graphs=True)
    print(report.summary())
    _assert_within(entry, report)


def _assert_within(entry, report) -> None:
    assert report.cases, f"no inputs for {entry.model}"
    bad = [c for c in report.cases if not c.agree]
    assert not bad, f"decisions differ from Paddle: {bad}"
    assert report.exact <= EXACT_TOLERANCE, report.summary()
    # fp32: within TOLERANCE of the exact output, or (where fp32 rounding alone reaches that)
    # at Paddle's own fp32 noise level (verification.parity.NOISE_FACTOR).
    over = [f"{c.name}: max {max(c.max_abs, c.optimized):.2e}, noise {c.noise_ratio:.2f}x Paddle's"
            for c in report.cases if not c.within]
    assert not over, f"{report.summary()}: {over}"
    assert report.ok
    # Seeded weights must make outputs depend on the input, or agreement would be trivial.
    assert not report.input_spread < MIN_INPUT_SPREAD, f"{entry.model}: outputs barely depend on the input"


def test_above_the_tolerance_only_at_paddles_noise_level():
    """An input whose fp32 output lies further than TOLERANCE from the exact one passes only
    where PyTorch's RMS distance is within NOISE_FACTOR of Paddle's noisiest runtime's."""
    from verification.parity import NOISE_FACTOR, TOLERANCE, Case

    def case(max_abs, rms, paddle_rms, optimized_rms=0.0):
        return Case("x", max_abs, 0.0, 0.0, True, paddle_fp32=max_abs, optimized=max_abs,
                    rms=rms, optimized_rms=optimized_rms, paddle_rms=paddle_rms)

    assert case(TOLERANCE, rms=1.0, paddle_rms=1e-9).within  # within the tolerance: noise not asked
    assert case(5e-4, rms=2e-5, paddle_rms=2e-5).within
    assert case(5e-4, rms=NOISE_FACTOR * 2e-5, paddle_rms=2e-5).within
    assert not case(5e-4, rms=2.1 * 2e-5, paddle_rms=2e-5).within
    assert not case(5e-4, rms=2e-5, paddle_rms=2e-5, optimized_rms=5e-5).within  # the optimized form too
    assert not case(5e-4, rms=0.0, paddle_rms=0.0).within  # no noise of Paddle's to compare with


def test_a_precision_fault_fails_parity(shared_dir, paddle, monkeypatch):
    """A real model whose optimized form ran bfloat16-rounded weights (a precision fault, the
    kind the fp32 check is for) fails: above the tolerance and far above Paddle's noise level."""
    from converter.convert import convert
    import verification.parity as parity

    folder = shared_dir / "paddle_models" / "ch_PP-OCRv4_rec_infer"  # unsaturated softmax rows
    images = sorted((shared_dir / "images" / "words" / "ch").iterdir())[:2]
    exact_optimized = parity.optimized_model

    def bf16_weights(conv, **kw):
        model = exact_optimized(conv, **kw)
        for p in model.parameters():
            p.data = p.data.bfloat16().float()
        return model

    monkeypatch.setattr(parity, "optimized_model", bf16_weights)
    report = parity.check_parity(folder, images, conversion=convert(folder))
    assert not report.ok
    bad = [c for c in report.cases if not c.within]
    assert bad and all(c.noise_ratio > 10 * parity.NOISE_FACTOR for c in bad), report.summary()


def test_a_flipped_pixel_passes_only_within_the_references_own_error():
    """A detection pixel that binarizes differently from Paddle's is a rounding tie only where
    its exact probability lies within TOLERANCE of the threshold, or within Paddle's own fp32
    error on that input where that is larger (a seeded server detector's, 3.8e-4)."""
    from types import SimpleNamespace

    import numpy as np

    from verification.parity import TOLERANCE, _det_judge

    judge = _det_judge(SimpleNamespace(config={"postprocess": {}}))
    x = np.zeros((1, 3, 32, 32), np.float32)
    exact = np.full((1, 1, 32, 32), 0.05)
    exact[..., 8:24, 8:24] = 0.95
    exact[..., 2, 2] = 0.3 + 2e-4  # 2e-4 above the DB threshold
    paddle, torch_ = exact.copy(), exact.copy()
    torch_[..., 2, 2] = 0.3 - 1e-5  # below it: a flip
    assert not judge(x, paddle, torch_, exact, exact)[0]  # beyond TOLERANCE of the threshold
    agree, detail = judge(x, paddle, torch_, exact, exact, 3e-4)  # Paddle itself is 3e-4 off here
    assert agree and "1 rounding ties" in detail
    assert not judge(x, paddle, torch_, exact, exact, 1.5 * TOLERANCE)[0]
    flipped64 = exact.copy()
    flipped64[..., 2, 2] = 0.3 - 1e-5
    assert not judge(x, paddle, torch_, exact, flipped64, 3e-4)[0]  # fp64 must agree everywhere


def test_a_flipped_pick_passes_only_as_a_rounding_tie():
    """Text/label decisions: a pick that differs from Paddle's is accepted only where the exact
    probabilities of the two classes are within the tolerance, and fp64 decisions must agree."""
    import numpy as np

    from verification.parity import _argmax_judge

    judge = _argmax_judge(lambda p: [str(r) for r in p.argmax(-1).tolist()])
    exact = np.array([[0.4, 0.4 + 1e-8, 0.2 - 1e-8]])
    paddle, torch_ = np.array([[0.40001, 0.4, 0.2]]), np.array([[0.4, 0.40001, 0.2]])
    assert judge(None, paddle, torch_, exact, exact)[0]  # a tie: either order is rounding
    assert "1 rounding ties" in judge(None, paddle, torch_, exact, exact)[1]
    wide = np.array([[0.45, 0.35, 0.2]])
    assert not judge(None, paddle, torch_, wide, wide)[0]  # 0.1 apart: a real difference
    assert not judge(None, paddle, torch_, exact, np.array([[0.41, 0.39, 0.2]]))[0]  # fp64 picks differ
    assert judge(None, paddle, paddle, wide, wide)[0]


def test_paddle_runs_in_one_process_equal_separate_processes(shared_dir, paddle):
    """The Paddle references come from one subprocess per model (verification.paddle_runner runs
    every runtime and float64 in turn): each must be bit-identical to that run alone."""
    import numpy as np

    from converter.convert import convert
    from verification.parity import PADDLE_RUNTIMES, paddle_outputs, single_inputs

    folder = shared_dir / "paddle_models" / "ch_ppocr_mobile_v2.0_cls_infer"
    images = sorted((shared_dir / "images" / "words" / "ch").iterdir())[:2]
    inputs = [x for _, x in single_inputs(convert(folder).config, images)]
    runs = ["float64", *PADDLE_RUNTIMES]
    together = paddle_outputs(folder, inputs, runs)
    for run in runs:
        alone = paddle_outputs(folder, inputs, [run])[run]
        assert all(np.array_equal(a, b) for a, b in zip(together[run], alone)), run
    # The runs differ (else the comparison above would not tell them apart).
    assert not np.array_equal(together["float64"][0], together["oneDNN"][0])
