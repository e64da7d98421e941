"""The pieces ``ptocr train`` builds from a PaddleOCR config, each from its section: the loss
(``Loss:``), a recognizer's dictionary (``Global.character_dict_path``), the post-processing
(``PostProcess:``), the metric (``Metric:``), the network (``Global.checkpoints`` /
``pretrained_model``, MultiHead's GTC branch), the device and the seed. Names ptocr has are in
``LOSSES`` / ``POSTPROCESS`` / ``METRICS``; any other is refused naming the supported ones.
"""

from __future__ import annotations

import logging
import random
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ptocr.api import create_model
from ptocr.architectures import canonical_name
from ptocr.dictionary import Dictionary, builtin_dictionary, read_dictionary
from ptocr.errors import ArchitectureError, DictionaryError, PtocrError
from ptocr.loading import is_name
from ptocr.manifest import load_manifest
from ptocr.postprocess import ClsPostProcess, CTCLabelDecode, DBPostProcess
from ptocr.training.architecture import ConfigArchitecture
from ptocr.training.distributed import require_cuda
from ptocr.training.loaders import construct
from ptocr.training.losses import ClsLoss, CTCLoss, DBLoss
from ptocr.training.metrics import ClsMetric, DetMetric, RecMetric
from ptocr.training.multihead import MultiHeadTraining, MultiLoss, gtc_settings
from ptocr.training.train_state import CheckpointModel, resolve

__all__ = ["LOSSES", "POSTPROCESS", "METRICS", "GLOBAL_DEFAULTS", "build_loss", "build_dictionary",
           "build_postprocess", "build_metric", "build_model", "wrap_multihead", "guard_nan", "select_device",
           "set_seed"]

log = logging.getLogger("ptocr.training")


# Per task: the Loss / PostProcess / Metric names of tools/train.py that ptocr has.
LOSSES = {"det": {"DBLoss": DBLoss}, "rec": {"CTCLoss": CTCLoss}, "cls": {"ClsLoss": ClsLoss}}
POSTPROCESS = {"det": "DBPostProcess", "rec": "CTCLabelDecode", "cls": "ClsPostProcess"}
METRICS = {"det": DetMetric, "rec": RecMetric, "cls": ClsMetric}
_GTC_LOSSES = {"NRTRHead": "NRTRLoss", "SARHead": "SARLoss"}  # MultiHead's branch -> its loss in MultiLoss
_MULTI_LOSS_KEYS = ("loss_config_list", "weight_1", "weight_2")
# Where PaddleOCR's configs point character_dict_path (paths in its repository).
_PADDLEOCR_DICTS = ("ppocr/utils/", "./ppocr/utils/")
# PaddleOCR's CTCLabelDecode without a character_dict_path.
_DEFAULT_CHARACTERS = tuple("0123456789abcdefghijklmnopqrstuvwxyz")
GLOBAL_DEFAULTS = {"epoch_num": 1, "log_smooth_window": 20, "print_batch_step": 10, "save_model_dir": "./output",
                    "save_epoch_step": 1, "eval_batch_step": [0, 2000], "max_text_length": 25,
                    "use_space_char": False, "seed": 1024, "cal_metric_during_train": False,
                    "calc_epoch_interval": 1}


def _one_of(section: dict, where: str, names) -> tuple[str, dict]:
    args = dict(section)
    name = args.pop("name", None)
    if name not in names:
        raise PtocrError(f"{where}.name {name!r} is not supported here; supported: {', '.join(names)}")
    return name, args


def _multi_loss(section: dict, arch: ConfigArchitecture) -> MultiLoss:
    """PaddleOCR's MultiLoss: CTCLoss + NRTRLoss (v4 / v5) or SARLoss (v3), for a MultiHead; the
    entries' arguments go to MultiLoss as PaddleOCR's losses take them."""
    if arch.gtc_head is None:
        raise PtocrError("Loss MultiLoss trains a MultiHead: Architecture.Head must be MultiHead with its "
                         "CTCHead and NRTRHead / SARHead")
    unknown = set(section) - {"name", *_MULTI_LOSS_KEYS}
    if unknown:
        raise PtocrError(f"Loss MultiLoss: unknown keys {sorted(unknown)} (it takes loss_config_list, weight_1, weight_2)")
    entries = section.get("loss_config_list") or []
    if not all(isinstance(entry, dict) and len(entry) == 1 for entry in entries):
        raise PtocrError(f"Loss MultiLoss: each loss_config_list entry is one 'LossName: arguments', got {entries!r}")
    head = next(iter(arch.gtc_head))
    gtc = _GTC_LOSSES.get(head)
    if gtc is None:
        raise PtocrError(f"Architecture.Head MultiHead: a {head} entry is not supported (NRTRHead, SARHead)")
    names = [next(iter(entry)) for entry in entries]
    if names != ["CTCLoss", gtc]:
        raise PtocrError(f"Loss MultiLoss: loss_config_list must be [CTCLoss, {gtc}] for this MultiHead, got {names}")
    return MultiLoss(entries, float(section.get("weight_1", 1.0)), float(section.get("weight_2", 1.0)))


def build_loss(section: dict, arch: ConfigArchitecture) -> nn.Module:
    if section.get("name") == "MultiLoss":
        return _multi_loss(section, arch)
    name, args = _one_of(section, "Loss", [*LOSSES[arch.task], *(["MultiLoss"] if arch.gtc_head else [])])
    # -o Loss.name=CTCLoss on a MultiLoss config leaves MultiLoss's keys, which PaddleOCR's losses
    # take as **kwargs and ignore.
    args = {k: v for k, v in args.items() if k not in _MULTI_LOSS_KEYS}
    return construct(name, LOSSES[arch.task][name], args, "Loss")


def build_dictionary(glob: dict) -> Dictionary:
    """A recognizer's dictionary from Global (PaddleOCR's default characters without a path). A
    path inside PaddleOCR's repository (``ppocr/utils/...``) that is not here is the ptocr copy of
    that file (``ptocr/dicts``), where it has one."""
    path, space = glob.get("character_dict_path"), bool(glob.get("use_space_char", False))
    if not path:
        return Dictionary(_DEFAULT_CHARACTERS, False, "<PaddleOCR default: 0-9a-z>")
    if not Path(path).exists() and Path(path).as_posix().startswith(_PADDLEOCR_DICTS):
        try:
            dictionary = builtin_dictionary(Path(path).name, space)
        except DictionaryError:
            pass
        else:
            log.info("Global.character_dict_path %s: PaddleOCR's file, read from ptocr's copy %s", path,
                     dictionary.source)
            return dictionary
    return read_dictionary(path, space)


def build_postprocess(section: dict, task: str, dictionary: Dictionary | None, label_list):
    name, args = _one_of(section, "PostProcess", [POSTPROCESS[task]])
    if task == "det":
        return construct(name, DBPostProcess, args, "PostProcess")
    if task == "rec":
        extra = set(args) - {"character_dict_path", "use_space_char"}  # tools/train.py fills them from Global
        if extra:
            raise PtocrError(f"PostProcess.{name}: unknown keys {sorted(extra)}")
        return CTCLabelDecode(dictionary.classes)
    return ClsPostProcess(args.get("label_list", label_list))


def build_metric(section: dict, task: str):
    cls = METRICS[task]
    name, args = _one_of(section, "Metric", [cls.__name__])
    main = args.pop("main_indicator", cls.main_indicator)
    if main != cls.main_indicator:
        raise PtocrError(f"Metric.main_indicator {main!r}: {name} ranks by {cls.main_indicator}")
    return construct(name, cls, args, "Metric")


def _pretrained_source(value) -> str | Path:
    """PaddleOCR's ``pretrained_model`` is a path prefix (``.../best_accuracy``); a file, folder or zoo name too."""
    if str(value).startswith(("http://", "https://")):  # PaddleOCR's load_model downloads these
        raise PtocrError(f"Global.pretrained_model {value}: ptocr train does not download; fetch the file and give "
                         "its path (-o Global.pretrained_model=PATH), or leave it empty to start fresh")
    path = Path(str(value))
    for candidate in (path, path.with_name(path.name + ".pdparams"), path.with_name(path.name + ".safetensors")):
        if candidate.exists():
            return candidate
    if is_name(str(value)) and str(value) in load_manifest().models:
        return str(value)
    raise PtocrError(f"Global.pretrained_model {value}: no such file ({path}, .pdparams, .safetensors) "
                     "and no zoo model of that name")


def _head_fits(net, num_classes: int | None) -> bool:
    return num_classes is None or getattr(net.head, "out_channels", num_classes) == num_classes


def _check_classes(net, num_classes: int | None, where: str) -> None:
    if not _head_fits(net, num_classes):
        raise DictionaryError(f"{where}: its head has {net.head.out_channels} classes, the config's dictionary "
                              f"makes {num_classes}: the dictionary does not match the model")


def _checkpoint_net(arch: ConfigArchitecture, resume, chosen: CheckpointModel):
    """``create_model(arch.name, pretrained=chosen.path)``, the file read only where its sha256 is
    still the one it was chosen with (a save may have replaced it since: a ModelFileError)."""
    try:
        return create_model(arch.name, pretrained=chosen.path, expected_sha256=chosen.sha256)
    except ArchitectureError as e:
        raise ArchitectureError(f"Global.checkpoints {resume} does not fit the config's Architecture: {e}") from None


def build_model(arch: ConfigArchitecture, glob: dict, num_classes: int | None, dictionary: Dictionary | None,
                keep_head: bool = False, checkpoint: CheckpointModel | None = None):
    """The network: resumed from Global.checkpoints, else from Global.pretrained_model, else fresh.
    ``keep_head`` (evaluation): a pretrained head whose class count is not the dictionary's is
    refused, as a checkpoint's always is, rather than started fresh. ``checkpoint``: the model
    file of Global.checkpoints as the caller found it (:func:`~ptocr.training.train_state.resolve`,
    ``load_checkpoint``), looked for here without."""
    resume = glob.get("checkpoints")
    if resume:
        # Its newest complete set's model (a save may have stopped midway), read only if unchanged since.
        net = _checkpoint_net(arch, resume, checkpoint if checkpoint is not None else resolve(resume))
        _check_classes(net, num_classes, f"Global.checkpoints {resume}")
        return net
    value = glob.get("pretrained_model")
    if not value:
        return create_model(arch.name, num_classes=num_classes)
    source = _pretrained_source(value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if isinstance(source, str):  # a zoo name: its own architecture must be the config's
            net = create_model(source, pretrained=True, num_classes=None if keep_head else num_classes)
            if canonical_name(net.config["architecture"]) != canonical_name(arch.name):
                raise PtocrError(f"Global.pretrained_model {source} is a {net.config['architecture']} model; the "
                                 f"config's Architecture is {arch.name}")
        else:
            net = create_model(arch.name, pretrained=source)
            if not keep_head and not _head_fits(net, num_classes):
                log.warning("%s: its head has %d classes, the dictionary %d: the head's last layer starts fresh "
                            "(PaddleOCR skips the mismatched weights alike)", source, net.head.out_channels,
                            num_classes)
                net = create_model(arch.name, pretrained=source, num_classes=num_classes)
    for w in caught:
        log.warning("%s", w.message)
    if keep_head:
        _check_classes(net, num_classes, f"Global.pretrained_model {value}")
    old = getattr(net, "dictionary", None)
    if dictionary is not None and old is not None and old.classes != dictionary.classes \
            and len(old.classes) == len(dictionary.classes):
        log.warning("the pretrained model's dictionary (%s) is not Global.character_dict_path's: its classes are "
                    "trained as this dictionary's characters", old.source)
    return net


def wrap_multihead(net: nn.Module, arch: ConfigArchitecture, glob: dict) -> MultiHeadTraining:
    """The recognizer with MultiHead's GTC branch (the config's NRTRHead / SARHead entry); its
    weights from a PaddleOCR training checkpoint given as Global.pretrained_model, else fresh."""
    (name, args), = arch.gtc_head.items()
    args = dict(args or {})
    known = set(gtc_settings(arch.name)) - {"name"} if name == "NRTRHead" else None
    if known is not None and set(args) - known:
        raise PtocrError(f"Architecture.Head MultiHead NRTRHead: unknown keys {sorted(set(args) - known)} (it takes "
                         f"{', '.join(sorted(known))})")
    try:
        wrapper = MultiHeadTraining(net, gtc_head={"name": name, **args})
    except TypeError as e:
        raise PtocrError(f"Architecture.Head MultiHead {name}: {e}") from None
    value = glob.get("pretrained_model")
    source = _pretrained_source(value) if value and not glob.get("checkpoints") else None
    if isinstance(source, Path) and (source.suffix == ".pdparams" or _training_folder(source)):
        wrapper.load_paddle_branch(source)  # a folder: the checkpoint the converter's reader picks there
    elif not glob.get("checkpoints"):
        log.warning("MultiHead's %s branch starts freshly initialised (its weights come only from a PaddleOCR "
                    "training checkpoint, .pdparams, as Global.pretrained_model)", name)
    return wrapper


def _training_folder(path: Path) -> bool:
    return path.is_dir() and any(path.glob("*.pdparams"))


def _zero_nan(module, inputs, output):
    return torch.where(torch.isnan(output), torch.zeros_like(output), output) if module.training else output


def guard_nan(net: nn.Module) -> None:
    """DBHead's ``fix_nan``: in training PaddleOCR zeroes NaNs after the first two conv-BN(-ReLU)
    layers of the binarize and thresh branches (ReLU keeps a zero zero, so after the BN is the same)."""
    for branch in (getattr(net.head, "binarize", None), getattr(net.head, "thresh", None)):
        for name in ("conv_bn1", "conv_bn2"):
            if branch is not None and hasattr(branch, name):
                getattr(branch, name).register_forward_hook(_zero_nan)


def select_device(glob: dict) -> torch.device:
    if glob.get("use_gpu"):
        require_cuda()
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def set_seed(seed: int) -> None:
    """tools/train.py's set_seed: every generator the loop and the augmentations draw from."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
