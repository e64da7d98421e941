"""Record PaddleOCR's own MultiHead (CTC + NRTR branch) and MultiLoss on small fixed inputs.

    python -m tools.gtc_reference --paddleocr-src DIR [--out tests/fixtures/gtc_reference]

Dev only (needs paddlepaddle). ``DIR`` is a PaddleOCR source tree holding at least
``ppocr/modeling/heads/{rec_multi_head,rec_nrtr_head,rec_ctc_head,rec_sar_head}.py``,
``ppocr/modeling/necks/rnn.py``, ``ppocr/modeling/backbones/rec_svtrnet.py`` and
``ppocr/losses/{rec_multi_loss,rec_ctc_loss,rec_nrtr_loss,rec_sar_loss}.py`` (a checkout, or
just those files; the SAR ones may be stubs). Writes what ``tests/test_training_gtc.py`` compares
ptocr's ``MultiHeadTraining`` / ``MultiLoss`` against in CI, where paddle is not installed:

* ``multihead.pdparams``: the MultiHead's state dict as a training checkpoint names it
  (``head.*``), without NRTR's constant sinusoid table (``positional_encoding.pe``, 1.3 MB);
* ``io.npz``: the feature map, the labels, the training outputs (``ctc``, ``ctc_neck``, ``nrtr``),
  the losses, the gradients of the summed loss w.r.t. the feature map and some parameters, and
  the NRTR head's greedy decode (``forward_test``) in eval mode.

Every Dropout is set to p = 0 (the NRTR layers' and the SVTR neck's), the model otherwise in
training mode (teacher forcing, batch statistics), so the outputs are deterministic.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# Small settings (the real ones: in_channels 480, nrtr_dim 384, 4 layers, ~6600 classes). MultiHead
# gives nrtr_dim // 32 heads: one here, to keep the fixture small (~300 KB); the tests check the
# multi-head split against torch's own attention instead.
CHARACTERS = list("abcdefghijklmnopqrstuvwxyz0123")  # 30; + blank + space: 32 CTC classes
IN_CHANNELS, WIDTH = 32, 40
NECK = {"name": "svtr", "dims": 16, "depth": 1, "hidden_dims": 32, "kernel_size": [1, 3], "use_guide": True}
NRTR = {"nrtr_dim": 32, "num_decoder_layers": 2, "max_text_length": 25}
# Texts as dictionary indices (0-based); the batch of three has different lengths, so the NRTR
# labels carry padding after </s> and the loss ignores it.
TEXTS = [[7, 4, 11, 11, 14], [2, 0, 19], [30, 1, 25, 3, 17, 8, 12, 5]]
GRAD_PARAMS = (
    "before_gtc.1.fc.weight",
    "gtc_head.embedding.embedding.weight",
    "gtc_head.decoder.0.self_attn.qkv.bias",
    "gtc_head.decoder.0.cross_attn.kv.weight",
    "gtc_head.decoder.1.mlp.fc2.bias",
    "gtc_head.decoder.1.norm3.weight",
    "gtc_head.tgt_word_prj.weight",
    "ctc_head.fc.weight",
    "ctc_encoder.encoder.conv1.conv.weight",
)
SEED = 2024


def labels(max_len: int) -> dict[str, np.ndarray]:
    """CTCLabelEncode / NRTRLabelEncode targets of TEXTS (CTC: index + 1; NRTR: index + 4)."""
    ctc = np.zeros((len(TEXTS), max_len), np.int64)
    gtc = np.zeros((len(TEXTS), max_len), np.int64)
    for i, text in enumerate(TEXTS):
        ctc[i, :len(text)] = [c + 1 for c in text]
        gtc[i, :len(text) + 2] = [2, *[c + 4 for c in text], 3]
    return {"label_ctc": ctc, "label_gtc": gtc, "length": np.array([len(t) for t in TEXTS], np.int64)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paddleocr-src", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "tests/fixtures/gtc_reference")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.paddleocr_src.resolve()))

    import paddle
    from ppocr.losses.rec_multi_loss import MultiLoss
    from ppocr.modeling.heads.rec_multi_head import MultiHead

    paddle.seed(SEED)
    np.random.seed(SEED)
    ctc_classes = len(CHARACTERS) + 2
    head = MultiHead(IN_CHANNELS, {"CTCLabelDecode": ctc_classes, "NRTRLabelDecode": ctc_classes + 3},
                     head_list=[{"CTCHead": {"Neck": dict(NECK), "Head": {"fc_decay": 1e-5}}},
                                {"NRTRHead": dict(NRTR)}])
    for layer in head.sublayers():
        if isinstance(layer, paddle.nn.Dropout):
            layer.p = 0.0
    head.train()
    loss_fn = MultiLoss(loss_config_list=[{"CTCLoss": None}, {"NRTRLoss": None}])

    rng = np.random.RandomState(SEED)
    feature = rng.standard_normal((len(TEXTS), IN_CHANNELS, 1, WIDTH)).astype(np.float32)
    targets = labels(NRTR["max_text_length"])
    valid_ratio = np.ones(len(TEXTS), np.float32)
    x = paddle.to_tensor(feature, stop_gradient=False)
    batch = [x, paddle.to_tensor(targets["label_ctc"]), paddle.to_tensor(targets["label_gtc"]),
             paddle.to_tensor(targets["length"]), paddle.to_tensor(valid_ratio)]
    out = head(x, targets=batch[1:])
    losses = loss_fn(out, batch)
    losses["loss"].backward()
    params = dict(head.named_parameters())

    head.eval()
    with paddle.no_grad():
        tokens, probs = head.gtc_head.forward_test(head.before_gtc(paddle.to_tensor(feature)))

    record = {"feature": feature, "valid_ratio": valid_ratio, **targets,
              "ctc": out["ctc"].numpy(), "ctc_neck": out["ctc_neck"].numpy(), "nrtr": out["nrtr"].numpy(),
              "loss_ctc": losses["CTCLoss"].numpy(), "loss_nrtr": losses["NRTRLoss"].numpy(),
              "loss": losses["loss"].numpy(), "grad_feature": x.grad.numpy(),
              "greedy_tokens": tokens.numpy(), "greedy_probs": probs.numpy()}
    record.update({f"grad:{name}": params[name].grad.numpy() for name in GRAD_PARAMS})
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "io.npz", **record)
    state = {f"head.{k}": v for k, v in head.state_dict().items() if not k.endswith("positional_encoding.pe")}
    paddle.save(state, str(args.out / "multihead.pdparams"))
    settings = {"characters": "".join(CHARACTERS), "in_channels": IN_CHANNELS, "width": WIDTH, "neck": NECK,
                "nrtr": NRTR, "seed": SEED, "paddle": paddle.__version__}
    (args.out / "settings.json").write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: loss {float(losses['loss']):.6f} "
          f"(ctc {float(losses['CTCLoss']):.6f}, nrtr {float(losses['NRTRLoss']):.6f})")


if __name__ == "__main__":
    main()
