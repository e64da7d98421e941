"""Parity: the converted PyTorch model against the Paddle original, on real inputs.

The Paddle side runs under Paddle Inference in a subprocess (``verification.paddle_runner``;
paddlepaddle is an optional extra). Both sides get the same pre-processed real inputs;
we compare the raw outputs (max |delta| of probabilities) and what a user would read
from them: the binarized detection map and DB boxes, the decoded text, the class label.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Sequence

import cv2
import numpy as np
import torch

from converter.convert import Conversion, convert
from ptocr.errors import PtocrError
from ptocr.optimize import compile_for_inference, example_input, for_inference, inference_settings
from ptocr.postprocess import ClsPostProcess, CTCLabelDecode, DBPostProcess
from ptocr.postprocess.unwarp import apply_mesh, page_input, to_image
from verification.unwarp_program import mesh_program
from ptocr.transforms import DetPreprocess, RecPreprocess, cls_preprocess, load_image

TOLERANCE = 1e-4  # max |delta| of output probabilities: PyTorch fp32 vs the program's exact output
# PyTorch fp64 vs Paddle fp64 on the same program: rounding is gone, so anything above
# this is a different computation (a wrong op, constant or mapping), not float error.
EXACT_TOLERANCE = 1e-6
# Where fp32 rounding alone reaches TOLERANCE (deep networks on seeded weights: Paddle's own fp32
# runs are up to 4.5e-4 from the exact output on ch_PP-OCRv4_server_det), the maximum over an
# output is the tail of a noise field, and the maxima of two correct fp32 runs differ by chance:
# Paddle's own oneDNN run lands 2.2x further than its native kernels there, PyTorch's within
# +-20 % of the oneDNN run, on either side by CPU. There PyTorch is judged by noise level instead:
# the RMS distance from the exact output over the whole output (a stable statistic) may be at most
# NOISE_FACTOR times that of Paddle's noisiest runtime, the spread Paddle's own runtimes show
# among themselves (RMS 1.9-3x on the seeded v4 server models). A precision fault (TF32, bf16, an
# approximated activation, a wrong border) moves the RMS by orders of magnitude.
NOISE_FACTOR = 2.0
# The fp32 runtimes Paddle Inference offers a CPU user (verification.paddle_runner.RUNS).
# Their rounding differs by kernel family: on rounding-sensitive inputs oneDNN's convolutions
# (which PyTorch's CPU convolutions also are) land further from the exact output than Paddle's
# native kernels, so Paddle's own fp32 error (and noise) is the largest over all of them. PIR programs
# run without oneDNN here (verification.paddle_runner; see paddle_runtimes).
PADDLE_RUNTIMES = ("graph passes", "program as saved", "oneDNN")


@dataclass
class Case:
    """One input compared.

    ``max_abs``: PyTorch fp32 vs the Paddle program run in fp64 (its exact output).
    ``exact``: PyTorch fp64 vs the Paddle program in fp64.
    ``fp32``: PyTorch fp32 vs Paddle Inference fp32 (what two fp32 deployments give).
    ``agree``: what a user reads (boxes, text, label) is the same as from Paddle Inference fp32,
    from the converted model and from its inference-optimized form alike.
    ``optimized``: as ``max_abs``, for the model as ``ptocr.load`` runs it
    (``ptocr.optimize.for_inference``: batch norms folded, activations in place).
    ``rms``, ``optimized_rms``: the RMS of the differences whose maximum ``max_abs`` and
    ``optimized`` are; ``paddle_rms``: that of Paddle's noisiest fp32 runtime.
    """

    name: str
    max_abs: float
    exact: float
    fp32: float
    agree: bool
    detail: str = ""
    # Paddle's own fp32 rounding on this input: the largest distance from the program's exact
    # output over Paddle's CPU runtimes (PADDLE_RUNTIMES).
    paddle_fp32: float = 0.0
    paddle_runtime: str = ""  # the runtime that gave paddle_fp32
    optimized: float = 0.0
    rms: float = 0.0
    optimized_rms: float = 0.0
    paddle_rms: float = 0.0
    # How many things the agreement compared (Paddle fp32's boxes, non-empty texts, labels, pages):
    # agreement on nothing (no boxes on either side, empty texts) proves nothing.
    compared: int = 0

    @property
    def worst(self) -> float:
        """The larger fp32 distance from the exact output: the converted model's or its optimized form's."""
        return max(self.max_abs, self.optimized)

    @property
    def noise_ratio(self) -> float:
        """PyTorch's fp32 noise level over Paddle's noisiest runtime's (eager or optimized, the larger)."""
        return max(self.rms, self.optimized_rms) / self.paddle_rms if self.paddle_rms else float("inf")

    @property
    def within(self) -> bool:
        """Within TOLERANCE of the exact output, or, only on an input where Paddle's own fp32
        error exceeds TOLERANCE (fp32 rounding alone reaches it there), at Paddle's own fp32
        noise level (NOISE_FACTOR)."""
        return self.worst <= TOLERANCE or (self.paddle_fp32 > TOLERANCE and self.noise_ratio <= NOISE_FACTOR)


@dataclass
class ParityReport:
    model: str
    architecture: str
    form: str | None
    source_kind: str  # "trained weights" | "real program + seeded weights"
    format: str
    cases: list[Case] = field(default_factory=list)
    tolerance: float = TOLERANCE
    agreement_kind: str = ""  # what "agree" means for this task
    compared_kind: str = ""  # what Case.compared counts ("boxes", "non-empty texts", ...)
    # How far apart the outputs of different inputs are (see ``input_spread``): a comparison
    # means something only if this dwarfs the tolerance.
    input_spread: float = float("nan")

    @property
    def max_abs(self) -> float:
        return max((c.max_abs for c in self.cases), default=float("nan"))

    @property
    def optimized(self) -> float:
        return max((c.optimized for c in self.cases), default=float("nan"))

    @property
    def exact(self) -> float:
        return max((c.exact for c in self.cases), default=float("nan"))

    @property
    def fp32(self) -> float:
        return max((c.fp32 for c in self.cases), default=float("nan"))

    @property
    def agreed(self) -> int:
        return sum(c.agree for c in self.cases)

    @property
    def compared(self) -> int:
        return sum(c.compared for c in self.cases)

    @property
    def paddle_fp32(self) -> float:
        return max((c.paddle_fp32 for c in self.cases), default=float("nan"))

    @property
    def noise_ratio(self) -> float:
        """The largest noise ratio over the inputs above TOLERANCE (nan if none is)."""
        return max((c.noise_ratio for c in self.cases if c.worst > TOLERANCE),
                   default=float("nan"))

    @property
    def paddle_runtime(self) -> str:
        """The Paddle runtime of the largest own fp32 error."""
        return max(self.cases, key=lambda c: c.paddle_fp32).paddle_runtime if self.cases else ""

    @property
    def over_tolerance(self) -> int:
        """Cases above TOLERANCE (they pass only at Paddle's own fp32 noise level, NOISE_FACTOR)."""
        return sum(c.worst > self.tolerance for c in self.cases)

    @property
    def ok(self) -> bool:
        return (bool(self.cases) and all(c.within for c in self.cases) and self.exact <= EXACT_TOLERANCE
                and self.agreed == len(self.cases) and self.compared > 0)

    def summary(self) -> str:
        over = (f", {self.over_tolerance} inputs above it at {self.noise_ratio:.2f}x Paddle's fp32 noise (RMS)"
                if self.over_tolerance else "")
        return (f"{self.model}: max |d| {self.max_abs:.2e} (tol {self.tolerance:.0e}{over}), "
                f"optimized {self.optimized:.2e}, "
                f"fp64 {self.exact:.1e}, fp32 vs Paddle Inference {self.fp32:.2e}, "
                f"Paddle fp32 own error {self.paddle_fp32:.2e} ({self.paddle_runtime}), "
                f"input spread {self.input_spread:.2f}, "
                f"{self.agreement_kind} {self.agreed}/{len(self.cases)} ({self.compared} {self.compared_kind}) "
                f"-> {'OK' if self.ok else 'FAIL'}")


def paddle_available() -> bool:
    return importlib.util.find_spec("paddle") is not None


def paddle_runtimes(model_dir: str | os.PathLike) -> list[str]:
    """The PADDLE_RUNTIMES that run ``model_dir``: all for a Paddle 2 program, all but oneDNN
    for a Paddle 3 (PIR) one."""
    return [r for r in PADDLE_RUNTIMES if r != "oneDNN" or Path(model_dir, "inference.pdmodel").is_file()]


def paddle_outputs(model_dir: str | os.PathLike, inputs: Sequence[np.ndarray], runs: Sequence[str], *,
                   threads: int = 2) -> dict[str, list[np.ndarray]]:
    """Run the Paddle original on each input (N x C x H x W float32) in one subprocess, once per
    run: Paddle Inference in fp32 (each of PADDLE_RUNTIMES named), and for ``"float64"`` the
    program in fp64. Returns each run's outputs."""
    if not paddle_available():
        raise PtocrError("parity needs paddlepaddle: pip install 'ptocr[parity]'")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "in.npz"), Path(tmp, "out.npz")
        np.savez(src, **{f"x{i}": x for i, x in enumerate(inputs)})
        cmd = [sys.executable, "-m", "verification.paddle_runner", str(model_dir), str(src), str(dst),
               "--threads", str(threads)] + [a for r in runs for a in ("--run", r)]
        env = dict(os.environ, GLOG_minloglevel="2", PYTHONPATH=_pythonpath())
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise PtocrError(f"Paddle Inference failed on {model_dir}:\n{done.stderr[-3000:]}")
        with np.load(dst) as out:
            return {r: [out[f"r{j}_y{i}"] for i in range(len(inputs))] for j, r in enumerate(runs)}


# More input shapes than a parity run has, so that none of them misses its graph.
_EVERY_SHAPE = 1000


@torch.inference_mode()
def torch_outputs(model: torch.nn.Module, inputs: Sequence[np.ndarray], dtype=torch.float32) -> list[np.ndarray]:
    model.eval()
    return [model(torch.from_numpy(x).to(dtype)).numpy() for x in inputs]


def optimized_model(conv: Conversion, *, compiled: bool = False, shape_graphs: bool | None = None) -> torch.nn.Module:
    """The model as ptocr.load runs it once warm: its task's, architecture's and own settings
    (ptocr.optimize.inference_settings), with shape graphs (where those settings have them) built
    at the first call of each input shape and for every shape, so that every input is read through
    one. ``compiled``: and ``torch.compile``d, as ``ptocr.load(..., compile=True)``;
    ``shape_graphs``: as ``ptocr.load(..., shape_graphs=...)``."""
    optimized = for_inference(conv.model, example_input(conv.config),
                              **inference_settings(conv.config, shape_graphs=shape_graphs))
    if getattr(optimized, "shape_graphs", None) is not None:
        optimized.shape_graphs.build_after = 1
        optimized.shape_graphs.max_shapes = _EVERY_SHAPE
    return compile_for_inference(optimized) if compiled else optimized


def check_parity(
    model_dir: str | os.PathLike,
    images: Sequence[str | os.PathLike],
    *,
    arch: str | None = None,
    name: str | None = None,
    conversion: Conversion | None = None,
    source_kind: str = "trained weights",
    threads: int = 2,
    compiled: bool = False,
    shape_graphs: bool | None = None,
    postprocess: dict | None = None,
) -> ParityReport:
    """Convert ``model_dir`` (unless ``conversion`` is given) and compare it with Paddle on ``images``.
    ``compiled``: the optimized model is also ``torch.compile``d (``ptocr.load(..., compile=True)``);
    ``shape_graphs``: it is loaded with ``ptocr.load(..., shape_graphs=...)``; ``postprocess``:
    settings that replace the config's in the decisions compared (a detector's DB settings),
    named in the report's agreement."""
    conv = conversion or convert(model_dir, arch)
    task = conv.config["task"]
    agreement = _AGREEMENT[task]
    if postprocess:
        conv = copy.copy(conv)
        conv.config = {**conv.config, "postprocess": {**conv.config["postprocess"], **postprocess}}
        agreement += f" (post-processing {', '.join(f'{k}={v}' for k, v in postprocess.items())})"
    named = task_inputs(conv.config, [Path(p) for p in images])
    inputs = [x for _, x in named]
    runs = ["float64", *paddle_runtimes(model_dir)]
    if task == "unwarp":  # numbers on the mesh, the network's output; decisions on the pages
        with tempfile.TemporaryDirectory() as tmp:
            refs = paddle_outputs(mesh_program(model_dir, Path(tmp, "mesh")), inputs, runs, threads=threads)
        judge = _unwarp_judge(inputs, paddle_outputs(model_dir, inputs, ["float64", "graph passes"], threads=threads))
    else:
        refs = paddle_outputs(model_dir, inputs, runs, threads=threads)
        judge = _JUDGES[task](conv)
    ref64 = refs.pop("float64")
    ref = refs["graph passes"]  # the default runtime: what `fp32` and the decisions are judged against
    got = torch_outputs(conv.model, inputs)
    got64 = torch_outputs(copy.deepcopy(conv.model).double(), inputs, torch.float64)
    opt = torch_outputs(optimized_model(conv, compiled=compiled, shape_graphs=shape_graphs), inputs)
    report = ParityReport(name or Path(model_dir).name, conv.arch_name, conv.form, source_kind,
                          conv.source.format, agreement_kind=agreement, compared_kind=_COMPARED[task])
    report.input_spread = input_spread(conv.model, named, got)
    for i, ((case_name, x), r, r64, g, g64, o) in enumerate(zip(named, ref, ref64, got, got64, opt)):
        if not r.shape == r64.shape == g.shape == o.shape:
            raise PtocrError(f"{case_name}: Paddle output {r.shape} vs PyTorch {g.shape} (optimized {o.shape})")
        own, runtime = max((max_abs(outs[i], r64), name) for name, outs in refs.items())
        reach = max(TOLERANCE, own)  # Paddle's own rounding ties reach as far
        agree, detail, compared = judge(x, r, g, r64, g64, reach)
        agree_opt, detail_opt, _ = judge(x, r, o, r64, g64, reach)
        if not agree_opt:
            detail += f"; optimized: {detail_opt}"
        report.cases.append(Case(case_name, max_abs(g, r64), max_abs(g64, r64), max_abs(g, r), agree and agree_opt,
                                 detail, paddle_fp32=own, paddle_runtime=runtime, optimized=max_abs(o, r64),
                                 rms=rms(g, r64), optimized_rms=rms(o, r64),
                                 paddle_rms=max(rms(outs[i], r64) for outs in refs.values()),
                                 compared=compared))
    return report


def input_spread(model: torch.nn.Module, named: Sequence[tuple[str, np.ndarray]],
                 outputs: Sequence[np.ndarray]) -> float:
    """How far apart the model's outputs for different inputs are: the largest max |delta| over
    pairs of single inputs' outputs (the padded batches repeat them), each pair compared on the
    leading region both share (outputs of different sizes, e.g. two scenes' maps, on their common
    top-left corner: the same output positions, different content). A row of one input adds that
    input mirrored left-right (a different input of the same shape, run here only)."""
    singles = [g for (case_name, _), g in zip(named, outputs) if not case_name.startswith("batch of")]
    if len(singles) == 1:
        singles += torch_outputs(model, [np.ascontiguousarray(named[0][1][..., ::-1])])
    return max((common_max_abs(a, b) for i, a in enumerate(singles) for b in singles[i + 1:]),
               default=float("nan"))


def common_max_abs(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| over the leading region both arrays share (a and b of the same rank)."""
    common = tuple(slice(0, min(m, n)) for m, n in zip(a.shape, b.shape))
    return max_abs(a[common], b[common])


def task_inputs(config: dict, images: Sequence[Path], *, batch: bool = True) -> list[tuple[str, np.ndarray]]:
    """(name, N x C x H x W float32) inputs the parity check compares on, pre-processed as the
    model's config prescribes: one per image, and with ``batch`` also a padded batch of all
    crops (rec, cls) and every crop turned 180 degrees (cls)."""
    return _INPUTS[config["task"]](config, images, batch=batch)


def single_inputs(config: dict, images: Sequence[Path]) -> list[tuple[str, np.ndarray]]:
    """One pre-processed input per image (N = 1), as the model's config prescribes."""
    return task_inputs(config, images, batch=False)


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b|, computed in float64."""
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def rms(a: np.ndarray, b: np.ndarray) -> float:
    """The root mean square of a - b, computed in float64."""
    return float(np.sqrt(np.mean(np.square(a.astype(np.float64) - b.astype(np.float64)))))


# ---- inputs per task: (name, N x C x H x W float32) ----

def _det_inputs(config, images, batch=True):
    pre = DetPreprocess(**config["preprocess"])
    return [(_case(p), pre(load_image(p))[0][None]) for p in images]


def _rec_inputs(config, images, batch=True):
    pre = RecPreprocess(**config["preprocess"])
    crops = [load_image(p) for p in images]
    singles = [(_case(p), pre(c)[None]) for p, c in zip(images, crops)]
    # Also one padded batch of all crops, as predict_rec batches them.
    return singles + ([(f"batch of {len(crops)}", pre.batch(crops))] if batch else [])


def _cls_inputs(config, images, batch=True):
    pre = cls_preprocess(config["preprocess"])
    crops = [load_image(p) for p in images]
    turned = [cv2.rotate(c, cv2.ROTATE_180) for c in crops]
    if not batch:
        return [(_case(p), pre(c)[None]) for p, c in zip(images, crops)]
    return ([(_case(p), pre(c)[None]) for p, c in zip(images, crops)]
            + [(f"{_case(p)} (180)", pre(c)[None]) for p, c in zip(images, turned)]
            + [(f"batch of {2 * len(crops)}", pre.batch(crops + turned))])


def _unwarp_inputs(config, images, batch=True):
    return [(_case(p), page_input(load_image(p))) for p in images]  # each page at its own size


# ---- what a user reads from the outputs must be the same ----

class Verdict(NamedTuple):
    """A judge's answer on one input: whether what a user reads agrees, why, and how many things
    (boxes, non-empty texts, labels, pages of Paddle fp32) were compared."""

    agree: bool
    detail: str
    compared: int


def _det_judge(conv):
    post = DBPostProcess(**conv.config["postprocess"])

    def judge(x, ref, got, ref64, got64, reach=TOLERANCE):
        h, w = x.shape[2:]
        info = [(h, w, 1.0, 1.0)]
        # A pixel whose exact probability is within ``reach`` of the threshold (TOLERANCE, or
        # the reference's own fp32 error on the input where larger) is a rounding tie: fp32
        # may put it either side (counted, not failed). Without rounding (fp64 against fp64)
        # every pixel and box must be the same.
        flips = (ref > post.thresh) != (got > post.thresh)
        ties = np.abs(ref64 - post.thresh) <= reach
        flipped, tied = int((flips & ~ties).sum()), int((flips & ties).sum())
        exact_flips = int(((ref64 > post.thresh) != (got64 > post.thresh)).sum())
        (ref_boxes, ref_scores), = post(ref, info)
        (got_boxes, got_scores), = post(got, info)
        unexplained = _unexplained_boxes((ref_boxes, ref_scores), (got_boxes, got_scores),
                                         (flips & ties)[0, 0], post.box_thresh, reach)
        same32 = _same_boxes(ref_boxes, got_boxes)
        (boxes64, _), = post(ref64, info)
        same64 = _same_boxes(boxes64, post(got64, info)[0][0])
        agree = flipped == 0 and exact_flips == 0 and same64 and unexplained == 0
        detail = (f"{flipped} pixels binarize differently ({tied} rounding ties), fp64 {exact_flips}; "
                  f"{len(ref_boxes)} boxes")
        if not same32:
            detail += f" ({unexplained} differing boxes not explained by a rounding tie)"
        return Verdict(agree, detail + ("" if same64 else " (fp64 boxes differ)"), len(ref_boxes))
    return judge


def _same_boxes(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool((a == b).all())


def _unexplained_boxes(ref: tuple, got: tuple, tied_flips: np.ndarray, box_thresh: float, reach: float) -> int:
    """How many boxes (``(boxes, scores)`` at map resolution) one side has and the other lacks
    that no rounding tie explains. A tie explains a box whose region holds a pixel that binarized
    differently within its tie window (``tied_flips``: the component, hence its box, changed
    there), or whose score is within ``reach`` of ``box_thresh`` (kept on one side, dropped on the
    other). Any other difference (a box's score or filtering elsewhere) is unexplained."""
    def key(box):
        return box.tobytes()

    ref_keys, got_keys = {key(b) for b in ref[0]}, {key(b) for b in got[0]}
    unexplained = 0
    for (boxes, scores), others in ((ref, got_keys), (got, ref_keys)):
        for box, score in zip(boxes, scores):
            if key(box) in others or abs(score - box_thresh) <= reach or _holds_any(box, tied_flips):
                continue
            unexplained += 1
    return unexplained


def _holds_any(box: np.ndarray, pixels: np.ndarray) -> bool:
    """Whether the quad ``box`` (its edges included) covers any True pixel of ``pixels``."""
    if not pixels.any():
        return False
    region = np.zeros(pixels.shape, np.uint8)
    cv2.fillPoly(region, [box.reshape(-1, 1, 2).astype(np.int32)], 1)
    return bool((region.astype(bool) & pixels).any())


def _argmax_flips(ref: np.ndarray, got: np.ndarray, ref64: np.ndarray, reach: float = TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """Where the fp32 outputs pick different classes (last axis), per row of the batch (first
    axis): (flips, rounding ties). A tie is a pick whose two classes' exact probabilities are
    within ``reach`` (TOLERANCE, or the reference's own fp32 error on the input where larger):
    fp32 may order them either way (seeded recognizers with thousands of classes meet such ties)."""
    a, b = ref.argmax(-1), got.argmax(-1)
    differ = a != b
    pa = np.take_along_axis(ref64, a[..., None], -1)[..., 0]
    pb = np.take_along_axis(ref64, b[..., None], -1)[..., 0]
    tie = np.abs(pa - pb) <= reach
    per_row = tuple(range(1, differ.ndim))
    return (differ & ~tie).sum(axis=per_row), (differ & tie).sum(axis=per_row)


def _argmax_judge(read):
    """Decisions (``read``: outputs -> what a user reads, one per batch row) identical to Paddle's,
    but where a row's picks met a rounding tie (counted): only that row's decision may differ.
    Without rounding (fp64 against fp64) they must be identical. Counts the non-empty decisions
    (a label 0 counts; an empty text does not)."""
    def judge(x, ref, got, ref64, got64, reach=TOLERANCE):
        rt, gt = read(ref), read(got)
        flipped, tied = _argmax_flips(ref, got, ref64, reach)
        same64 = read(ref64) == read(got64)
        unexplained = sum(a != b and not t for a, b, t in zip(rt, gt, tied))
        agree = int(flipped.sum()) == 0 and same64 and unexplained == 0
        detail = " | ".join(rt) if rt == gt else f"paddle {rt} vs torch {gt}"
        if tied.any():
            detail += f" ({int(tied.sum())} rounding ties: exact probabilities within {reach:.0e})"
        return Verdict(agree, detail + ("" if same64 else "; fp64 decisions differ"), sum(t not in ("", None) for t in rt))
    return judge


def _rec_judge(conv):
    decode = CTCLabelDecode(conv.dictionary.classes)
    return _argmax_judge(lambda probs: [t for t, _ in decode(probs)])


def _cls_judge(conv):
    post = ClsPostProcess(conv.config["postprocess"].get("labels"))
    return _argmax_judge(lambda probs: [lab for lab, _ in post(probs)])


def _unwarp_judge(inputs, pages):
    """Judges meshes by the pages they give: the program's own pages (``pages``: its fp32 and fp64
    runs) against the input sampled through ptocr's mesh (``apply_mesh``, ``to_image``). Without
    rounding (fp64 against fp64) every uint8 value must be the same; in fp32 a value may differ
    only where the exact page times 255 lies within the two fp32 pages' error of an integer (a
    rounding tie: PaddleX's cast truncates)."""
    by_input = {id(x): (p32[0], p64[0]) for x, p32, p64 in zip(inputs, pages["graph passes"], pages["float64"])}

    def judge(x, ref, got, ref64, got64, reach=TOLERANCE):  # reach unused: the pages set the window
        page32, page64 = by_input[id(x)]
        mine = apply_mesh(torch.from_numpy(x), torch.from_numpy(got))[0].numpy()
        mine64 = apply_mesh(torch.from_numpy(x).double(), torch.from_numpy(got64))[0].numpy()
        exact = page64.transpose(1, 2, 0) * 255.0
        page_reach = 255.0 * max(max_abs(page32, page64), max_abs(mine, page64))
        differ = to_image(page32) != to_image(mine)
        tie = np.abs(exact - np.round(exact)) <= page_reach
        flipped, tied = int((differ & ~tie).sum()), int((differ & tie).sum())
        same64 = bool((to_image(page64) == to_image(mine64)).all())
        detail = f"{flipped} page values differ ({tied} rounding ties)"
        return Verdict(flipped == 0 and same64, detail + ("" if same64 else "; fp64 pages differ"), 1)
    return judge


_INPUTS = {"det": _det_inputs, "rec": _rec_inputs, "cls": _cls_inputs, "unwarp": _unwarp_inputs}
_JUDGES = {"det": _det_judge, "rec": _rec_judge, "cls": _cls_judge}  # unwarp: _unwarp_judge, from the program's pages
_AGREEMENT = {"det": "identical binarized maps and boxes", "rec": "identical text", "cls": "identical labels",
              "unwarp": "identical unwarped pages (uint8)"}
_COMPARED = {"det": "boxes", "rec": "non-empty texts", "cls": "labels", "unwarp": "pages"}  # what Verdict.compared counts


def _pythonpath() -> str:
    # The runner is ``python -m verification.paddle_runner``; verification is never installed
    # (not in the wheel), so the repository root goes first on the child's path.
    root = str(Path(__file__).resolve().parents[1])
    old = os.environ.get("PYTHONPATH")
    return root if not old else f"{root}{os.pathsep}{old}"


def _case(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def decision_judge(conv: Conversion):
    """``judge(x, ref, got, ref64, got64, reach=TOLERANCE) -> Verdict``: whether what a
    user reads from ``got`` is what ``ref`` gives, but for rounding ties within ``reach`` (the
    checks above, for the conversion's task), and what that agreement is called (for reports
    of other references, e.g. ONNX Runtime)."""
    task = conv.config["task"]
    if task not in _JUDGES:
        raise PtocrError(f"{conv.arch_name}: a {task} model is judged against its Paddle program's pages only")
    return _JUDGES[task](conv), _AGREEMENT[task]
