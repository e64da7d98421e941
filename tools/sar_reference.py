"""Writes tests/fixtures/sar_reference/: PaddleOCR's own SARHead and SARLoss run in paddle.

Run by hand (needs paddlepaddle), not in CI::

    python tools/sar_reference.py --paddleocr-src DIR [--out tests/fixtures/sar_reference]

``DIR`` is a PaddleOCR source tree holding ``ppocr/modeling/heads/rec_sar_head.py`` and
``ppocr/losses/rec_sar_loss.py`` (only those two files are loaded, each on its own: they import
nothing but paddle) and ``ppocr/data/imaug/label_ops.py`` (its SARLabelEncode makes the labels;
an installed paddleocr 2.x wheel has it). For each case it writes ``<case>.pdparams`` (the head's
state dict as ``paddle.save`` writes it, LSTM/GRU weights under both of paddle's names) and
``<case>.npz``: the inputs (``feat``, ``label``, ``length``, ``valid_ratio``), the training
forward's ``logits``, ``loss``, the gradient of the loss w.r.t. ``feat`` (``grad_feat``) and a
few parameters (``grad/<name>``, :data:`GRAD_PARAMS`), and the eval-mode greedy decode with and
without the targets (``eval_probs_masked``, ``eval_probs_unmasked``). Every dropout is 0, so all
of it is deterministic (a rerun writes the same bytes). Small settings: about 270 KB in all.
"""

from __future__ import annotations

import argparse
import ast
import sys
import tempfile
from pathlib import Path

import numpy as np

CHARS = "abcdefghijklmnopqrstuvwxyz0123"  # + space: 31 characters, SAR's 34 classes
TEXTS = ["ab1", "hel lo", "z?q"]  # "?" is not in the dictionary: dropped
VALID_RATIOS = [1.0, 0.3, 0.62]  # float64 as paddle's collate makes them; 0.3 * 20 is 6 exactly
MAX_TEXT_LENGTH = 8
FEAT_SHAPE = {"lstm": (3, 32, 2, 20), "gru_bi": (3, 16, 2, 20)}
# SARHead keyword arguments per case; "lstm" is PP-OCRv3's structure (LSTMs, one direction,
# pred_concat), shrunk; "gru_bi" the other branches of the constructor.
CASES = {
    "lstm": dict(in_channels=32, enc_dim=16, d_k=16),
    "gru_bi": dict(in_channels=16, enc_dim=4, d_k=8, enc_gru=True, dec_gru=True, enc_bi_rnn=True,
                   dec_bi_rnn=True, pred_concat=False),
}


# paddle 3 made paddle.shape int64 (paddle 2: int32), and rec_sar_head.py's attention mask
# then mixes int64 and int32 in paddle.minimum, which paddle 3 refuses. The width as the shape's
# own dtype is the same small integer either way.
_PADDLE3_PATCHES = {"rec_sar_head.py": [('paddle.ceil(valid_ratios[i] * w).astype("int32")',
                                         "paddle.ceil(valid_ratios[i] * w).astype(w.dtype)")]}
# The parameters whose gradients are kept (one of each kind of layer; all would double the size).
# Not conv1x1_2.bias: a constant added to every attention score, its exact gradient is 0 (softmax).
GRAD_PARAMS = ("encoder.rnn_encoder.weight_ih_l0", "encoder.rnn_encoder.bias_hh_l1", "encoder.linear.weight",
               "decoder.conv1x1_1.weight", "decoder.conv3x3_1.weight", "decoder.conv1x1_2.weight",
               "decoder.rnn_decoder.weight_hh_l1", "decoder.embedding.weight", "decoder.prediction.weight",
               "decoder.prediction.bias")


def _load_module(path: Path, name: str):
    source = path.read_text(encoding="utf-8")
    for old, new in _PADDLE3_PATCHES.get(path.name, []):
        source = source.replace(old, new)
    module = type(sys)(name)
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def _sar_label_encode_class(src: Path):
    """SARLabelEncode and its base out of label_ops.py alone (the module imports much else)."""
    path = src / "ppocr/data/imaug/label_ops.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    wanted = {"BaseRecLabelEncode", "SARLabelEncode"}
    body = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name in wanted]
    ns = {"np": np, "get_logger": lambda: None}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), ns)
    return ns["SARLabelEncode"]


def _labels(src: Path):
    with tempfile.TemporaryDirectory() as tmp:
        dict_path = Path(tmp) / "dict.txt"
        dict_path.write_text("".join(c + "\n" for c in CHARS), encoding="utf-8")
        encoder = _sar_label_encode_class(src)(MAX_TEXT_LENGTH, str(dict_path), use_space_char=True)
    samples = [encoder({"label": t}) for t in TEXTS]
    label = np.stack([s["label"] for s in samples]).astype(np.int64)
    length = np.array([int(s["length"]) for s in samples], dtype=np.int64)
    return label, length, len(encoder.character), encoder.padding_idx


def _run_case(paddle, heads, losses, case: str, label, length, num_classes, padding_idx, out: Path):
    paddle.seed(1234)
    rng = np.random.default_rng(1234)
    head = heads.SARHead(out_channels=num_classes, max_text_length=MAX_TEXT_LENGTH, enc_drop_rnn=0.0,
                         dec_drop_rnn=0.0, pred_dropout=0.0, **CASES[case])
    # A nonzero padding row: paddle's lookup gives zeros for padding_idx whatever the row holds.
    embedding = head.decoder.embedding.weight
    weights = embedding.numpy()
    weights[padding_idx] = rng.standard_normal(weights.shape[1]).astype(np.float32)
    embedding.set_value(weights)

    loss_fn = losses.SARLoss(ignore_index=padding_idx)
    # The stored rec_sar_loss.py hard-codes ignore_index=92; current PaddleOCR reads the keyword
    # (tools/train.py sets it to the padding index). Set it as the keyword would.
    loss_fn.loss_func.ignore_index = padding_idx

    feat_np = rng.standard_normal(FEAT_SHAPE[case]).astype(np.float32)
    feat = paddle.to_tensor(feat_np, stop_gradient=False)
    valid_ratio = paddle.to_tensor(np.array(VALID_RATIOS, dtype=np.float64))
    targets = [paddle.to_tensor(label), paddle.to_tensor(length), valid_ratio]

    head.train()
    logits = head(feat, targets)
    batch = [paddle.to_tensor(np.zeros(1, np.float32)), targets[0], targets[1], valid_ratio]
    loss = loss_fn(logits, batch)["loss"]
    loss.backward()

    arrays = {"feat": feat_np, "label": label, "length": length, "valid_ratio": np.array(VALID_RATIOS),
              "logits": logits.numpy(), "loss": np.array(loss.numpy(), dtype=np.float32),
              "grad_feat": feat.grad.numpy()}
    for name, param in head.named_parameters():
        if name in GRAD_PARAMS or name.replace("_reverse", "") in GRAD_PARAMS:
            arrays[f"grad/{name}"] = param.grad.numpy()

    head.eval()
    with paddle.no_grad():
        arrays["eval_probs_masked"] = head(feat, targets).numpy()
        arrays["eval_probs_unmasked"] = head(feat, None).numpy()

    paddle.save(head.state_dict(), str(out / f"{case}.pdparams"))
    np.savez_compressed(out / f"{case}.npz", **arrays)
    print(f"{case}: loss {float(loss):.6f}, logits {tuple(logits.shape)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paddleocr-src", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests/fixtures/sar_reference")
    args = parser.parse_args(argv)
    import paddle

    paddle.set_device("cpu")
    src = args.paddleocr_src
    heads = _load_module(src / "ppocr/modeling/heads/rec_sar_head.py", "paddleocr_rec_sar_head")
    losses = _load_module(src / "ppocr/losses/rec_sar_loss.py", "paddleocr_rec_sar_loss")
    label, length, num_classes, padding_idx = _labels(src)
    args.out.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        _run_case(paddle, heads, losses, case, label, length, num_classes, padding_idx, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
