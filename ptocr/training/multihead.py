"""PaddleOCR's MultiHead training of the PP-OCRv3 / v4 / v5 recognizers: the CTC network ptocr
builds plus the training-only GTC branch beside it, their labels and their summed loss.

Facts from PaddleOCR's ``ppocr/modeling/heads/rec_multi_head.py`` (``MultiHead``: the backbone's
map goes once through the CTC branch, SVTR neck with ``use_guide`` + CTC head, and once through
the GTC branch, ``before_gtc`` = Flatten + Linear (+ learned positions with ``use_pos``) then the
NRTR decoder, or the SAR head on the map itself), ``ppocr/losses/rec_multi_loss.py`` and
``ppocr/data/imaug/label_ops.py`` (``MultiLabelEncode``). Which branch and its settings are the
architecture's data (``gtc_head`` in ``ptocr/architectures``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ptocr.architectures import canonical_name, get_architecture
from ptocr.errors import PtocrError
from ptocr.training.labels import CTCLabelEncode
from ptocr.training.losses import CTCLoss
from ptocr.training.nrtr import NRTRDecoder, NRTRLabelEncode, NRTRLoss
from ptocr.training.sar import SARHead, SARLabelEncode, SARLoss

__all__ = ["MultiHeadTraining", "MultiLabelEncode", "MultiLoss", "gtc_settings"]

# MultiHead's defaults for what a config's NRTRHead entry leaves out.
_NRTR_DEFAULTS = {"nrtr_dim": 256, "num_decoder_layers": 4, "max_text_length": 25, "use_pos": False,
                  "use_pool": False}
# The output key of each branch in MultiHead's training dict (MultiLoss reads these).
OUTPUT_KEYS = {"NRTRHead": "nrtr", "SARHead": "sar"}


def gtc_settings(arch: str) -> dict:
    """The GTC branch PaddleOCR trains ``arch`` with (its config's NRTRHead / SARHead entry)."""
    spec = get_architecture(arch)
    if "gtc_head" not in spec:
        raise PtocrError(f"{canonical_name(arch)} has no GTC branch in PaddleOCR's training (no MultiHead); "
                         "train it with its CTC loss alone")
    settings = dict(spec["gtc_head"])
    if settings["name"] == "NRTRHead":
        settings = {**_NRTR_DEFAULTS, **settings}
    return settings


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------
class _FCTranspose(nn.Module):
    """N x C x L -> N x L x C, then a bias-free Linear (MultiHead's FCTranspose)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.fc = nn.Linear(in_channels, out_channels, bias=False)

    def forward(self, x):
        return self.fc(x.transpose(1, 2))


class _AddPos(nn.Module):
    """Learned positions for up to 80 steps (MultiHead's AddPos, ``use_pos``)."""

    def __init__(self, dim: int, steps: int = 80):
        super().__init__()
        self.dec_pos_embed = nn.Parameter(torch.zeros(1, steps, dim))
        nn.init.trunc_normal_(self.dec_pos_embed, std=0.02)

    def forward(self, x):
        return x + self.dec_pos_embed[:, :x.shape[1]]


def _nrtr_branch(in_channels: int, ctc_classes: int, settings: dict) -> nn.ModuleDict:
    dim = int(settings["nrtr_dim"])
    steps = [nn.Flatten(2), _FCTranspose(in_channels, dim)] + ([_AddPos(dim)] if settings["use_pos"] else [])
    # NRTRLabelDecode's classes: the CTC head's (blank, characters, space) + <unk>, <s>, </s>.
    decoder = NRTRDecoder(dim, dim // 32, int(settings["num_decoder_layers"]), dim * 4, ctc_classes + 3,
                          max_len=int(settings["max_text_length"]))
    return nn.ModuleDict({"before_gtc": nn.Sequential(*steps), "gtc_head": decoder})


def _sar_branch(in_channels: int, ctc_classes: int, settings: dict) -> nn.ModuleDict:
    kwargs = {k: v for k, v in settings.items() if k != "name"}
    # SARLabelDecode's classes: the characters and space, then <UKN>, <BOS/EOS>, <PAD>.
    return nn.ModuleDict({"sar_head": SARHead(in_channels, ctc_classes + 2, **kwargs)})


_BRANCHES = {"NRTRHead": _nrtr_branch, "SARHead": _sar_branch}


class MultiHeadTraining(nn.Module):
    """A recognizer from ``ptocr.create_model`` (v3 / v4 / v5) with PaddleOCR's training-only GTC
    branch beside its CTC head, as PaddleOCR's MultiHead trains it.

    ``forward(image, batch)`` in training mode runs the backbone once and returns PaddleOCR's dict:
    ``"ctc"`` (the CTC logits), ``"ctc_neck"`` (the SVTR neck's sequence) and ``"nrtr"`` (the NRTR
    decoder's teacher-forced logits) or ``"sar"``; ``batch`` holds the GTC targets: a dict with
    ``label_gtc`` (``label_sar``), ``length`` and for SAR ``valid_ratio`` (:class:`MultiLabelEncode`
    and the dataset's), or PaddleOCR's list ``[image, label_ctc, label_gtc, length, valid_ratio]``.
    In eval mode it returns the recognizer's output (the branch is not run).

    As PaddleOCR's ``use_guide``, the SVTR neck's ``detach_input`` is set: the CTC loss's
    gradient stops at the backbone, which the GTC loss trains. ``.net`` is the recognizer
    itself (``ptocr.save_model(wrapper.net, ...)``); ``.branch`` holds the GTC modules under
    PaddleOCR's names (``before_gtc`` + ``gtc_head``, or ``sar_head``), freshly initialised, or
    read from a PaddleOCR training checkpoint with :meth:`load_paddle_branch`.
    """

    def __init__(self, net: nn.Module, gtc_head: dict | None = None):
        super().__init__()
        arch = (getattr(net, "config", None) or {}).get("architecture")
        if arch is None:
            raise PtocrError("MultiHeadTraining takes a recognizer from ptocr.create_model (its .config names "
                             "the architecture)")
        settings = gtc_settings(arch)
        settings.update(gtc_head or {})
        if settings.get("use_pool"):
            raise PtocrError("MultiHeadTraining: use_pool is not supported (no PaddleOCR recognizer config sets it)")
        encoder = getattr(net.neck, "encoder", None)
        if not hasattr(encoder, "detach_input"):
            raise PtocrError(f"MultiHeadTraining: {arch}'s neck is not the SVTR encoder MultiHead's CTC branch has")
        self.net = net
        self.settings = settings
        self.output_key = OUTPUT_KEYS[settings["name"]]
        in_channels = net.neck.encoder_reshape.out_channels
        self.branch = _BRANCHES[settings["name"]](in_channels, net.head.out_channels, settings)
        encoder.detach_input = bool(encoder.use_guide)

    @property
    def config(self) -> dict | None:
        """The recognizer's ptocr config (``create_optimizer`` reads its components)."""
        return self.net.config

    def forward(self, image: torch.Tensor, batch=None):
        feature = self.net.backbone(image)
        ctc_neck = self.net.neck(feature)
        ctc = self.net.head(ctc_neck)
        if not self.training:
            return ctc
        if batch is None:
            raise PtocrError("MultiHeadTraining trains on the batch's GTC targets: forward(image, batch)")
        out = {"ctc": ctc, "ctc_neck": ctc_neck}
        if self.output_key == "nrtr":
            label, length = _pick(batch, "label_gtc", 2), _pick(batch, "length", 3)
            out["nrtr"] = self.branch["gtc_head"](self.branch["before_gtc"](feature), (label, length))
        else:
            targets = [_pick(batch, "label_sar", 2), _pick(batch, "length", 3), _pick(batch, "valid_ratio", 4)]
            out["sar"] = self.branch["sar_head"](feature, targets)
        return out

    def load_paddle_branch(self, path, submodel: str | None = None) -> None:
        """Read the GTC branch's weights from a PaddleOCR training checkpoint (``.pdparams``);
        the CTC network's come through ``ptocr.create_model(arch, pretrained=path)``."""
        from ptocr.training.gtc_weights import load_gtc_branch

        load_gtc_branch(self.branch, path, submodel=submodel)


def _pick(batch, key: str, index: int):
    """``batch[key]`` of a dict, or item ``index`` of PaddleOCR's list [image, label_ctc, label_gtc,
    length, valid_ratio]."""
    if isinstance(batch, Mapping):
        if key not in batch:
            raise PtocrError(f"the batch has no {key!r} (MultiLabelEncode gives label_ctc, label_gtc or "
                             f"label_sar, length; the dataset valid_ratio)")
        return batch[key]
    if isinstance(batch, Sequence) and len(batch) > index:
        return batch[index]
    raise PtocrError("the batch must be a dict or PaddleOCR's list [image, label_ctc, label_gtc, length, "
                     "valid_ratio]")


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------
class MultiLabelEncode:
    """Text -> PaddleOCR's ``MultiLabelEncode`` targets: ``label_ctc`` (CTCLabelEncode's),
    ``label_gtc`` (NRTRLabelEncode's, ``gtc_encode="NRTRLabelEncode"``, v4 / v5) or ``label_sar``
    (SARLabelEncode's, ``gtc_encode=None``, v3), and ``length`` (the CTC label's). A text either
    encoder refuses raises ``PtocrError`` (PaddleOCR drops the sample): :meth:`accepts` filters.
    ``valid_ratio`` comes from the resize (``RecDataset``'s batches carry it).
    """

    def __init__(self, dictionary, max_text_length: int = 25, use_space_char: bool = True,
                 gtc_encode: str | None = "NRTRLabelEncode"):
        self.ctc_encode = CTCLabelEncode(dictionary, max_text_length, use_space_char)
        if gtc_encode == "NRTRLabelEncode":
            self.gtc_key = "label_gtc"
            self.gtc_encode = NRTRLabelEncode(self.ctc_encode.dictionary, max_text_length, use_space_char)
        elif gtc_encode is None:
            self.gtc_key = "label_sar"
            self.gtc_encode = SARLabelEncode(self.ctc_encode.dictionary, max_text_length=max_text_length,
                                             use_space_char=use_space_char)
        else:
            raise PtocrError(f"MultiLabelEncode: gtc_encode {gtc_encode!r}: expected 'NRTRLabelEncode' or None (SAR)")

    # What RecDataset reads of its encoder: the CTC label's dictionary, length and classes.
    @property
    def dictionary(self):
        return self.ctc_encode.dictionary

    @property
    def max_text_length(self) -> int:
        return self.ctc_encode.max_text_length

    @property
    def num_classes(self) -> int:
        return self.ctc_encode.num_classes

    @property
    def keys(self) -> tuple[str, str, str]:
        """The names of what :meth:`__call__` gives."""
        return ("label_ctc", self.gtc_key, "length")

    def accepts(self, text: str) -> bool:
        return self.ctc_encode.accepts(text) and self.gtc_encode.accepts(text)

    def encode(self, text: str) -> list[int]:
        """The CTC label's class indices; ``PtocrError`` where either encoder refuses the text."""
        self.gtc_encode.encode(text)
        return self.ctc_encode.encode(text)

    def __call__(self, text: str) -> dict[str, np.ndarray]:
        ctc = self.ctc_encode(text)
        gtc = self.gtc_encode(text)
        return {"label_ctc": ctc["label"], self.gtc_key: gtc["label"], "length": ctc["length"]}

    def batch(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """The targets of several texts stacked (N x max_text_length, N), for a training step."""
        encoded = [self(t) for t in texts]
        return {k: torch.from_numpy(np.stack([e[k] for e in encoded])) for k in encoded[0]}


# ---------------------------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------------------------
_LOSSES = {"CTCLoss": CTCLoss, "NRTRLoss": NRTRLoss, "SARLoss": SARLoss}
# The settings of each that a config's loss_config_list entry may give (others are ignored, as
# PaddleOCR's loss classes take **kwargs).
# SARLoss's ignore_index is not among them: tools/train.py always sets it (the CTC classes + 1).
_LOSS_SETTINGS = {"CTCLoss": ("use_focal_loss",), "NRTRLoss": ("smoothing",), "SARLoss": ()}


class MultiLoss(nn.Module):
    """PaddleOCR's MultiLoss: ``CTCLoss`` on ``predicts["ctc"]`` times ``weight_1`` plus
    ``NRTRLoss`` on ``predicts["nrtr"]`` (or ``SARLoss`` on ``predicts["sar"]``) times ``weight_2``.

    ``loss_config_list``: names, or a config's entries (``[{"CTCLoss": None}, {"NRTRLoss":
    {"smoothing": True}}]``). ``batch``: a dict (``label_ctc``, ``label_gtc`` / ``label_sar``,
    ``length``, ``valid_ratio``; a ``num_classes`` entry checks the CTC head as ``CTCLoss`` does)
    or PaddleOCR's list ``[image, label_ctc, label_gtc, length, valid_ratio]``. Returns PaddleOCR's
    dict: each loss by its name (weighted) and ``"loss"``, their sum. SARLoss ignores the SAR
    labels' padding, the CTC head's class count + 1, as PaddleOCR's ``tools/train.py`` sets its
    ``ignore_index`` under MultiHead whatever the config's entry says.
    """

    def __init__(self, loss_config_list=("CTCLoss", "NRTRLoss"), weight_1: float = 1.0, weight_2: float = 1.0):
        super().__init__()
        entries = [next(iter(e.items())) if isinstance(e, Mapping) else (e, None) for e in loss_config_list]
        unknown = [n for n, _ in entries if n not in _LOSSES]
        if unknown:
            raise PtocrError(f"MultiLoss: {', '.join(unknown)} not supported (known: {', '.join(_LOSSES)})")
        self.names = [n for n, _ in entries]
        self.losses = nn.ModuleDict({
            n: _LOSSES[n](**{k: v for k, v in (settings or {}).items() if k in _LOSS_SETTINGS[n]})
            for n, settings in entries})
        self.weight_1, self.weight_2 = weight_1, weight_2

    def forward(self, predicts: Mapping, batch) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name in self.names:
            if name == "CTCLoss":
                ctc = {"label": _pick(batch, "label_ctc", 1), "length": _pick(batch, "length", 3)}
                if isinstance(batch, Mapping) and "num_classes" in batch:
                    ctc["num_classes"] = batch["num_classes"]
                out[name] = self.losses[name](predicts["ctc"], ctc)["loss"] * self.weight_1
            elif name == "NRTRLoss":
                nrtr = {"label_gtc": _pick(batch, "label_gtc", 2), "length": _pick(batch, "length", 3)}
                out[name] = self.losses[name](predicts["nrtr"], nrtr)["loss"] * self.weight_2
            else:  # SARLoss reads PaddleOCR's list [image, label_sar, length, valid_ratio]
                sar = [None, _pick(batch, "label_sar", 2), _pick(batch, "length", 3), _pick(batch, "valid_ratio", 4)]
                self.losses[name].ignore_index = int(predicts["ctc"].shape[-1] + 1)  # the SAR labels' padding
                out[name] = self.losses[name](predicts["sar"], sar)["loss"] * self.weight_2
        out["loss"] = sum(out[n] for n in self.names)
        return out
