"""The mesh of a UVDoc program: its network's own output, for parity.

PaddleX's UVDoc program ends by resampling the predicted 2 x 45 x 31 mesh to the page's size and
sampling the page through it (``bilinear_interp`` -> ``transpose`` -> ``grid_sample``). The page
it outputs is a poor thing to bound numerically: it moves with the image's gradient wherever the
mesh moves by a rounding step, so two float32 runtimes of the same program differ there by whole
fractions of a grey level. The mesh is what the network computes, and the quantity every other
model's parity bounds (its output, against the exact one). ``mesh_program`` writes a copy of the
program whose fetch is that mesh, with the three sampling ops removed; the weights are shared.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from converter.errors import FormatError

_SAMPLING = ("1.bilinear_interp", "1.transpose", "1.grid_sample")


def mesh_program(model_dir: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy the UVDoc program ``model_dir`` into ``dst`` with the mesh as its output."""
    src, out = Path(model_dir), Path(dst)
    text = json.loads((src / "inference.json").read_text(encoding="utf-8"))
    ops = text["program"]["regions"][0]["blocks"][0]["ops"]
    producer = {o["%"]: (i, op) for i, op in enumerate(ops) for o in op.get("O", []) if isinstance(o, dict) and "%" in o}
    chain = []  # grid_sample's grid, back through transpose and bilinear_interp to the mesh
    value = None
    for i, op in reversed(list(enumerate(ops))):
        if op["#"] == "1.grid_sample":
            chain, value = [i], op["I"][1]["%"]
            break
    for expected in ("1.transpose", "1.bilinear_interp"):
        i, op = producer.get(value, (None, {"#": None}))
        if op["#"] != expected:
            raise FormatError(f"{src}: not a UVDoc program (no grid_sample <- transpose <- bilinear_interp ending)")
        chain.append(i)
        value = op["I"][0]["%"]
    mesh_type = next(o["TT"] for o in producer[value][1]["O"] if o.get("%") == value)
    fetch = next(op for op in ops if op["#"] == "1.fetch")
    fetch["I"][0]["%"] = value
    fetch["O"][0]["TT"] = mesh_type
    text["program"]["regions"][0]["blocks"][0]["ops"] = [op for i, op in enumerate(ops) if i not in chain]
    out.mkdir(parents=True, exist_ok=True)
    (out / "inference.json").write_text(json.dumps(text), encoding="utf-8")
    for name in ("inference.pdiparams", "inference.yml"):
        if (src / name).is_file():
            shutil.copy(src / name, out / name)
    return out
