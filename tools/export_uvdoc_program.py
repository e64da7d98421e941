"""Export PaddleX's own UVDoc network as a Paddle 3 (PIR) inference program, without weights.

    /work/venv-pocr3/bin/python -m tools.export_uvdoc_program [--out tests/fixtures/paddle_graphs/UVDoc_infer]

Dev only: needs ``paddlex==3.7.2`` and ``paddlepaddle==3.3.1`` (the separate virtual environment
of ``tools/make_pipeline_reference.py --paddleocr3``). PaddleX's official ``UVDoc_infer`` program is
not in ``../shared``; this writes the same network, from paddlex 3.7.2's
``image_unwarping/modeling/uvdoc.py`` (``UVDocNet``), computed as its ``forward`` computes it
(page resampled to 712 x 488, network, mesh resampled to the page, ``grid_sample``), through
``paddle.jit.save``. Only ``inference.json`` and ``inference.yml`` are kept: tests seed the
weights (``verification.seeding_pir``) and run the program with Paddle Inference.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "fixtures" / "paddle_graphs" / "UVDoc_infer"

# PaddleX's inference.yml for UVDoc names the model and nothing else the predictor reads.
INFERENCE_YML = "Global:\n  model_name: UVDoc\n"


def export(out: Path) -> None:
    import paddle
    import paddle.nn.functional as F
    from paddlex.inference.models.image_unwarping.modeling._config import UVDocConfig
    from paddlex.inference.models.image_unwarping.modeling.uvdoc import UVDocNet

    class Program(paddle.nn.Layer):
        """UVDocNet.forward as a tensor function (the original takes and returns numpy lists)."""

        def __init__(self):
            super().__init__()
            self.net = UVDocNet(UVDocConfig())

        def forward(self, x):
            h, w = x.shape[2], x.shape[3]
            small = F.interpolate(x, size=self.net.upsample_size, mode=self.net.upsample_mode, align_corners=True)
            mesh = self.net.head(paddle.concat(self.net.backbone(small), axis=1))
            mesh = F.interpolate(mesh, size=(h, w), mode=self.net.upsample_mode, align_corners=True)
            return F.grid_sample(x, mesh.transpose([0, 2, 3, 1]), align_corners=True)

    model = Program()
    model.eval()
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]
    with tempfile.TemporaryDirectory() as tmp:
        paddle.jit.save(paddle.jit.to_static(model, input_spec=spec, full_graph=True), f"{tmp}/inference")
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(f"{tmp}/inference.json", out / "inference.json")
    (out / "inference.yml").write_text(INFERENCE_YML)
    (out / "SOURCE.json").write_text(json.dumps({
        "what": "paddlex 3.7.2 UVDocNet (UVDocConfig defaults) exported by paddle.jit.save, without weights",
        "made_by": "python -m tools.export_uvdoc_program",
        "paddle": paddle.__version__,
    }, indent=1) + "\n")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    export(p.parse_args(argv).out)


if __name__ == "__main__":
    main()
