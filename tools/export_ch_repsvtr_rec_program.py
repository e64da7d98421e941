"""Export PaddleOCR's ch_RepSVTR_rec network as a Paddle 3 (PIR) inference program, without weights.

    python -m tools.export_ch_repsvtr_rec_program --paddleocr PADDLEOCR_CHECKOUT [--out DIR] [--fused]

Dev only: needs ``paddlepaddle`` (3.x, PIR) and a PaddleOCR source checkout (its ``ppocr`` package
and ``configs/rec/SVTRv2/ch_RepSVTR_rec.yml``; PaddleOCR's wheels hold no ``ppocr.modeling``).
PaddleX's official ``ch_RepSVTR_rec_infer`` program is not in ``../shared``; this writes the same
network as PaddleOCR's ``tools/export_model.py`` does for that config, without ``load_model``
(tests seed the weights: ``verification.seeding_pir``):

* the model from the config's ``Architecture`` through PaddleOCR's own ``build_model``, with
  MultiHead's ``out_channels_list`` as ``export()`` sets it (CTC: the dictionary + blank + space,
  6625; SAR +2, NRTR +3), in eval mode;
* ``dynamic_to_static``'s input spec for ``SVTR_HGNet``, ``[None, 3, 48, -1]``, and ``paddle.jit.save``
  (PIR: ``export_with_pir``, as PaddleX's Paddle 3 releases are saved);
* no ``rep()``: PaddleOCR's exporter calls it only for a ``PPLCNetV3`` backbone, so the program
  holds every ``Conv2D_BN`` and ``RepVGGDW`` branch (what a release exported that way holds; the
  official program was not at hand to compare). ``--fused`` instead fuses
  the backbone first, as ``RepViT.rep()`` of later PaddleOCR releases does (``Conv2D_BN.fuse``,
  ``RepVGGDW.fuse`` in place; ``rep()`` itself where the checkout has it);
* ``inference.yml`` as ``dump_infer_config`` writes it (``Global.model_name``, ``Hpi``'s dynamic
  shapes, the Eval transforms as ``PreProcess``, ``PostProcess`` with the ``character_dict``).

Only ``inference.json`` and ``inference.yml`` are kept, with a ``SOURCE.json`` saying how they were made
and ``state_dict.json``: the structured name and shape of every tensor of the exported model (what a
training checkpoint of it holds, the NRTR branch included), which the program itself does not name.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path

from tools.paddleocr_export import read_characters, rec_inference_yml, save_weightless_program

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "fixtures" / "paddle_graphs" / "ch_RepSVTR_rec_infer"
CONFIG = Path("configs") / "rec" / "SVTRv2" / "ch_RepSVTR_rec.yml"


def _fuse(backbone) -> None:
    """``RepViT.rep()`` where the checkout has it, else the same walk over the ``fuse()`` methods its
    layers have had from the start: each ``Conv2D_BN`` / ``RepVGGDW`` (and ``Residual``, which
    returns itself around a Sequential) replaced by what its ``fuse()`` returns, outermost first."""
    if hasattr(backbone, "rep"):
        backbone.rep()
        return
    from ppocr.modeling.backbones.rec_repvit import Conv2D_BN, RepVGGDW, Residual

    replaced: list[str] = []
    fusable = [(n, s) for n, s in backbone.named_sublayers() if isinstance(s, (Conv2D_BN, RepVGGDW, Residual))]
    for name, layer in fusable:
        if any(name.startswith(p + ".") for p in replaced) or "." not in name:
            continue
        parent_name, attr = name.rsplit(".", 1)
        parent = backbone
        for part in parent_name.split("."):
            parent = getattr(parent, part)
        fused = layer.fuse()
        setattr(parent, attr, fused)
        if fused is not layer:
            replaced.append(name)


def export(checkout: Path, out: Path, fused: bool = False) -> None:
    import yaml

    sys.path.insert(0, str(checkout))  # build_model needs the real packages, __init__ files and all
    from ppocr.modeling.architectures import build_model

    config = yaml.safe_load((checkout / CONFIG).read_text(encoding="utf-8"))
    characters = read_characters(checkout / config["Global"]["character_dict_path"])
    classes = 1 + len(characters) + (1 if config["Global"].get("use_space_char") else 0)  # blank, chars, space
    arch = copy.deepcopy(config["Architecture"])
    arch["Head"]["out_channels_list"] = {"CTCLabelDecode": classes, "SARLabelDecode": classes + 2,
                                         "NRTRLabelDecode": classes + 3}
    model = build_model(arch)
    model.eval()
    if fused:
        _fuse(model.backbone)
    yml = rec_inference_yml(config["Global"]["model_name"], config["Eval"]["dataset"]["transforms"],
                            config["PostProcess"], characters)
    commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True)
    save_weightless_program(model, [None, 3, 48, -1], out, yml, {
        "what": f"PaddleOCR's {CONFIG.as_posix()} network (build_model, eval, {classes} CTC classes)"
                + (", backbone fused as RepViT.rep() does" if fused else ", unfused as tools/export_model.py saves it")
                + ", exported by paddle.jit.save with input spec [None, 3, 48, -1], without weights",
        "made_by": "python -m tools.export_ch_repsvtr_rec_program --paddleocr CHECKOUT" + (" --fused" if fused else ""),
        "paddleocr_commit": commit.stdout.strip() or None,
    }, full_graph=False)
    shapes = {name: list(t.shape) for name, t in model.state_dict().items()}
    (out / "state_dict.json").write_text("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}"
                                                            for k, v in shapes.items()) + "\n}\n")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paddleocr", type=Path, required=True, help="a PaddleOCR source checkout")
    p.add_argument("--out", type=Path, default=None, help=f"default {DEFAULT_OUT} (--fused: its fused/ folder)")
    p.add_argument("--fused", action="store_true", help="fuse the backbone first (RepViT.rep())")
    args = p.parse_args(argv)
    out = args.out or (DEFAULT_OUT / "fused" if args.fused else DEFAULT_OUT)
    export(args.paddleocr.resolve(), out, args.fused)


if __name__ == "__main__":
    main()
