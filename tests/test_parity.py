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
def paddle(shared_dir):
    """Where the shared models are (else shared_dir skips), paddle must be there to compare them:
    the README's test command installs it."""
    if not paddle_available():
        pytest.fail("paddlepaddle is not installed, so the parity proof cannot run: "
                    "pip install -e '.[test]'")


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
    # Agreement on nothing (no boxes either side, only empty texts) would prove nothing.
    assert report.compared > 0, f"{entry.model}: the agreement compared no {report.compared_kind}"
    # Seeded weights must make outputs depend on the input, or agreement would be trivial (nan:
    # not measured, fails too).
    assert report.input_spread >= MIN_INPUT_SPREAD, f"{entry.model}: input spread {report.input_spread}"
    assert report.ok


def test_above_the_tolerance_only_at_paddles_noise_level():
    """An input whose fp32 output lies further than TOLERANCE from the exact one passes only
    where Paddle's own fp32 error there is above TOLERANCE too and PyTorch's RMS distance is
    within NOISE_FACTOR of Paddle's noisiest runtime's."""
    from verification.parity import NOISE_FACTOR, TOLERANCE, Case

    def case(max_abs, rms, paddle_rms, optimized_rms=0.0, paddle_fp32=None):
        return Case("x", max_abs, 0.0, 0.0, True, paddle_fp32=max_abs if paddle_fp32 is None else paddle_fp32,
                    optimized=max_abs, rms=rms, optimized_rms=optimized_rms, paddle_rms=paddle_rms)

    assert case(TOLERANCE, rms=1.0, paddle_rms=1e-9).within  # within the tolerance: noise not asked
    assert case(5e-4, rms=2e-5, paddle_rms=2e-5).within
    assert case(5e-4, rms=NOISE_FACTOR * 2e-5, paddle_rms=2e-5).within
    assert not case(5e-4, rms=2.1 * 2e-5, paddle_rms=2e-5).within
    assert not case(5e-4, rms=2e-5, paddle_rms=2e-5, optimized_rms=5e-5).within  # the optimized form too
    assert not case(5e-4, rms=0.0, paddle_rms=0.0).within  # no noise of Paddle's to compare with
    # Paddle's own fp32 is within the tolerance on this input: the tolerance is a hard limit.
    assert not case(5e-4, rms=2e-5, paddle_rms=2e-5, paddle_fp32=TOLERANCE).within
    assert case(5e-4, rms=2e-5, paddle_rms=2e-5, paddle_fp32=1.01 * TOLERANCE).within


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
    agree, detail, _ = judge(x, paddle, torch_, exact, exact, 3e-4)  # Paddle itself is 3e-4 off here
    assert agree and "1 rounding ties" in detail
    assert not judge(x, paddle, torch_, exact, exact, 1.5 * TOLERANCE)[0]
    flipped64 = exact.copy()
    flipped64[..., 2, 2] = 0.3 - 1e-5
    assert not judge(x, paddle, torch_, exact, flipped64, 3e-4)[0]  # fp64 must agree everywhere


def test_a_rounding_tie_forgives_only_the_boxes_it_can_explain():
    """A tied pixel forgives a box difference only for a box whose region holds it (or a box
    whose score is within the reach of box_thresh): a box dropped elsewhere still fails."""
    from types import SimpleNamespace

    import numpy as np

    from verification.parity import _det_judge

    judge = _det_judge(SimpleNamespace(config={"postprocess": {}}))
    x = np.zeros((1, 3, 64, 64), np.float32)
    exact = np.full((1, 1, 64, 64), 0.05)
    exact[..., 8:24, 8:24] = exact[..., 40:56, 40:56] = 0.95
    exact[..., 7, 12] = 0.3 + 2e-4  # just above the DB threshold, next to the first box
    paddle, torch_ = exact.copy(), exact.copy()
    torch_[..., 7, 12] = 0.3 - 1e-5  # a rounding tie (Paddle itself is 3e-4 off here)
    agree, detail, compared = judge(x, paddle, torch_, exact, exact, 3e-4)
    assert agree and compared == 2 and "1 rounding ties" in detail
    dropped = torch_.copy()
    dropped[..., 40:56, 40:56] = 0.5  # the second box scores under box_thresh (0.6): dropped
    agree, detail, _ = judge(x, paddle, dropped, exact, exact, 3e-4)
    assert not agree and "1 differing boxes not explained" in detail
    scored = (exact.copy(), exact.copy())  # a box score at box_thresh: kept by one side only
    scored[0][..., 40:56, 40:56], scored[1][..., 40:56, 40:56] = 0.6 + 5e-5, 0.6 - 5e-5
    assert judge(x, scored[0], scored[1], exact, exact, 3e-4)[0]
    assert not judge(x, scored[0], scored[1], exact, exact, 1e-5)[0]


def test_the_agreement_counts_what_it_compared():
    """No box on either side, or only empty texts, is an agreement on nothing: counted as 0."""
    from types import SimpleNamespace

    import numpy as np

    from verification.parity import _argmax_judge, _det_judge

    judge = _det_judge(SimpleNamespace(config={"postprocess": {}}))
    blank = np.full((1, 1, 32, 32), 0.05)
    assert judge(np.zeros((1, 3, 32, 32)), blank, blank, blank, blank) == (True, judge(
        np.zeros((1, 3, 32, 32)), blank, blank, blank, blank)[1], 0)
    read = _argmax_judge(lambda p: ["" if r == 0 else str(r) for r in p.argmax(-1).tolist()])
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert read(None, probs, probs, probs, probs).compared == 1
    assert read(None, probs[:1], probs[:1], probs[:1], probs[:1]).compared == 0


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
    # A tie forgives only its own row's decision: another row reading differently still fails.
    rounded = _argmax_judge(lambda p: [f"{r.argmax()}:{r.max():.1f}" for r in p])
    two = (np.vstack([paddle, [[0.2, 0.8, 0.0]]]), np.vstack([torch_, [[0.3, 0.7, 0.0]]]))
    exact2 = np.vstack([exact, [[0.2, 0.8, 0.0]]])
    assert rounded(None, two[0], two[0], exact2, exact2)[0]
    assert not rounded(None, two[0], two[1], exact2, exact2)[0]
    two[1][1] = two[0][1]
    assert rounded(None, two[0], two[1], exact2, exact2)[0]


def test_input_spread_is_measured_for_every_row():
    """Outputs of different sizes are compared on their common leading region; a row of one
    input is compared with that input mirrored; never nan."""
    import numpy as np
    import torch

    from verification.parity import input_spread, torch_outputs

    model = torch.nn.Identity()
    a, b = np.zeros((1, 1, 4, 6), np.float32), np.zeros((1, 1, 5, 3), np.float32)
    b[..., 3, 2] = 0.5  # inside the common 4 x 3 corner
    outs = torch_outputs(model, [a, b])
    assert input_spread(model, [("a", a), ("b", b)], outs) == 0.5
    b[..., 3, 2], b[..., 4, 0] = 0.0, 0.5  # outside it
    assert input_spread(model, [("a", a), ("b", b)], torch_outputs(model, [a, b])) == 0.0
    one = np.zeros((1, 1, 2, 4), np.float32)
    one[..., 0] = 1.0  # not symmetric left-right
    named = [("one", one), ("batch of 1", one)]
    assert input_spread(model, named, torch_outputs(model, [one, one])) == 1.0
    one[..., 3] = 1.0  # symmetric: the mirrored input gives the same output
    assert input_spread(model, named, torch_outputs(model, [one, one])) == 0.0


def test_every_shared_model_folder_is_compared(shared_dir):
    """Every folder of paddle_models/ (zoo model, a user's own model, checkpoint) has a suite entry."""
    from verification.suite import SEEDED, EXPORTED

    compared = {e.folder for e in suite() if e.kind not in (SEEDED, EXPORTED)}
    folders = {p.name for p in (shared_dir / "paddle_models").iterdir() if p.is_dir()}
    assert folders <= compared, sorted(folders - compared)


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
