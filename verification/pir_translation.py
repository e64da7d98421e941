"""Translate Paddle 2 inference folders into Paddle 3 (PIR) ones with Paddle's own translator.

    python -m verification.pir_translation SRC DST [SRC DST ...]

Each SRC (``inference.pdmodel`` + ``inference.pdiparams``) is loaded by Paddle and its program
put through ``paddle.pir.translate_to_pir``: the same ops in the same order reading the same
weights, written by ``save_inference_model`` as ``inference.json`` + ``inference.pdiparams``.
The translator keeps the program's ``feed`` op; PaddleX's exports (``paddle.jit.save`` under PIR)
start with a ``data`` op instead, so one takes its place at the head of the program. No layer
names survive (PIR programs have none to read), so a converter places the weights by the graph.

Used by tests/test_paddlex_v3_v4_names.py: PaddleX released the PP-OCRv3 and v4 networks again
as PIR programs, which ``../shared`` does not hold. Needs paddlepaddle 3 (the parity extra).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def translate(src: Path, dst: Path) -> None:
    import paddle
    from paddle import pir

    exe = paddle.static.Executor(paddle.CPUPlace())
    legacy, feeds, _ = paddle.static.load_inference_model(str(src / "inference"), exe)
    program = pir.translate_to_pir(legacy.desc)
    block = program.global_block()
    with paddle.pir_utils.IrGuard(), paddle.static.program_guard(program):
        feed = next(op for op in block.ops if op.name() == "pd_op.feed")
        x = paddle.static.data(feeds[0], shape=feed.result(0).shape, dtype="float32")
        feed.result(0).replace_all_uses_with(x)
        block.remove_op(feed)
        fetches = [op.operand_source(0) for op in block.ops if op.name() == "pd_op.fetch"]
        dst.mkdir(parents=True, exist_ok=True)
        paddle.static.save_inference_model(str(dst / "inference"), [x], fetches, exe, program=program)
    _data_op_first(dst / "inference.json")


def _data_op_first(path: Path) -> None:
    """``paddle.static.data`` appended its op at the end of the block (moving an op segfaults in
    Paddle 3.3): move it, in the saved program, before the first op after the parameters."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    block = doc["program"]["regions"][0]["blocks"][0]
    data = [op for op in block["ops"] if op["#"] == "1.data"]
    rest = [op for op in block["ops"] if op["#"] != "1.data"]
    first = next(i for i, op in enumerate(rest) if op["#"] != "p")
    block["ops"] = rest[:first] + data + rest[first:]
    path.write_text(json.dumps(doc), encoding="utf-8")


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or len(args) % 2:
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    os.environ["FLAGS_enable_pir_api"] = "0"  # load the Paddle 2 program as a ProgramDesc
    import paddle

    paddle.enable_static()
    for src, dst in zip(args[::2], args[1::2]):
        translate(Path(src), Path(dst))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
