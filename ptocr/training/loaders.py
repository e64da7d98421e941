"""A PaddleOCR config's ``Train:`` / ``Eval:`` sections -> ptocr datasets and DataLoaders.

``dataset``: ``SimpleDataSet``, or ``MultiScaleDataSet`` with ``Train.sampler: MultiScaleSampler``
(each needs the other, as in PaddleOCR; ``ds_width`` only false), with ``data_dir``,
``label_file_list``, ``ratio_list``, ``delimiter``, ``ext_op_transform_idx`` and ``transforms``; the
transform list is built op by op from ``TRANSFORMS`` (the classes of :mod:`ptocr.training.data`
and :mod:`ptocr.training.augment`, which take PaddleOCR's arguments, the Global keys of the same
name overriding them as ``create_operators`` merges Global in), in the config's order:

* ``DecodeImage`` is the datasets' own decoding (BGR, channels last: other settings refused);
  ``KeepKeys`` names the keys a det dataset returns (rec and cls return theirs, a superset);
* rec: ``CTCLabelEncode`` encodes with the config's dictionary (``MultiLabelEncode``, with its
  ``gtc_encode``, for a MultiHead trained by MultiLoss); ``RecResizeImg`` (last before KeepKeys)
  is the dataset's resize (MultiScaleDataSet has none: it resizes to the sampler's scale after
  the ops); cls: ``ClsLabelEncode`` first (its ``label_list``: Global's), ``ClsResizeImg`` last.

An op not in the table (``SVTRRecAug``, ``ABINetRecAug``, ...) or an
argument its class does not take is refused by name (the names first, before the list's order is
checked). ``loader``: ``batch_size_per_card`` (at least 1), ``shuffle``, ``drop_last``,
``num_workers`` (at least 0), checked here rather than by torch's DataLoader
(``use_shared_memory`` has no torch meaning).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

from torch.utils.data import DataLoader

from ptocr.errors import PtocrError, close_names
from ptocr.training.config import whole_number
from ptocr.training.augment import (BaseDataAugmentation, CopyPaste, EastRandomCropData, IaaAugment, RandAugment,
                                    RecAug, RecConAug)
from ptocr.training.data import (ClsDataset, ClsLabelEncode, Compose, DetDataset, DetLabelEncode, DetResizeForTest,
                                 DistributedBatchSampler, EncodeText, MultiScaleSampler, NormalizeImage, RecDataset,
                                 RecResizeImg, ToCHWImage, ext_data_step, collate)
from ptocr.training.labels import MakeBorderMap, MakeShrinkMap
from ptocr.training.multihead import MultiLabelEncode

__all__ = ["TRANSFORMS", "build_dataset", "build_loader", "DataSettings", "construct"]


# Config op name -> (class, tasks where it may appear). Classes take the op's arguments.
TRANSFORMS = {
    "DetLabelEncode": (DetLabelEncode, ("det",)), "CopyPaste": (CopyPaste, ("det",)),
    "IaaAugment": (IaaAugment, ("det",)), "EastRandomCropData": (EastRandomCropData, ("det",)),
    "MakeBorderMap": (MakeBorderMap, ("det",)), "MakeShrinkMap": (MakeShrinkMap, ("det",)),
    "NormalizeImage": (NormalizeImage, ("det",)), "ToCHWImage": (ToCHWImage, ("det",)),
    "DetResizeForTest": (DetResizeForTest, ("det",)),
    "RecConAug": (RecConAug, ("rec",)), "RecAug": (RecAug, ("rec",)),
    "BaseDataAugmentation": (BaseDataAugmentation, ("cls",)), "RandAugment": (RandAugment, ("cls",)),
}
# Op arguments PaddleOCR takes and does nothing with, and why (accepted, dropped).
_NO_EPOCH = "grows shrink_ratio only with an 'epoch' argument, which tools/train.py never gives"
IGNORED_ARGS = {("MakeBorderMap", "total_epoch"): _NO_EPOCH, ("MakeShrinkMap", "total_epoch"): _NO_EPOCH}
# Ops the datasets themselves stand for (see the module docstring), by task.
_TASK_DATASET_OPS = {"det": {"DecodeImage", "KeepKeys"},
                     "rec": {"DecodeImage", "KeepKeys", "CTCLabelEncode", "MultiLabelEncode", "RecResizeImg"},
                     "cls": {"DecodeImage", "KeepKeys", "ClsLabelEncode", "ClsResizeImg"}}
# Where each of those goes in the list (elsewhere it is refused saying so).
_PLACES = {"DecodeImage": "must be the first op, and only the first", "KeepKeys": "must be the last op",
           "RecResizeImg": "must be the last op before KeepKeys, once", "ClsResizeImg": "must be the last op before "
           "KeepKeys, once", "ClsLabelEncode": "must come right after DecodeImage, once"}
_MULTI_LABEL_KEYS = {"gtc_encode", "max_text_length", "character_dict_path", "use_space_char"}
_DATASET_KEYS = {"name", "data_dir", "label_file_list", "ratio_list", "delimiter", "transforms", "ds_width",
                 "ext_op_transform_idx"}
_LOADER_KEYS = {"batch_size_per_card", "shuffle", "drop_last", "num_workers", "use_shared_memory"}
_SAMPLER_KEYS = {"name", "scales", "first_bs", "fix_bs", "divided_factor", "is_training"}


@dataclass
class DataSettings:
    """What the datasets take from Global and the network: a recognizer's CTC label encoder,
    whether MultiLabelEncode's targets are wanted (``multi_label``: the Loss is MultiLoss), the
    classifier's class count, the seed (ratio_list draws, MultiScaleSampler), and Global itself
    (``glob``: merged into the ops' arguments)."""

    task: str
    encoder: object = None
    class_dim: int | None = None
    seed: int = 1024
    multi_label: bool = False
    glob: dict = field(default_factory=dict)


def _with_global(cls, args: dict, glob: dict) -> dict:
    """``args`` with the Global keys ``cls`` takes put over them: PaddleOCR's ``create_operators``
    updates every op's arguments with Global (e.g. RecConAug's max_text_length is Global's)."""
    taken = inspect.signature(cls).parameters
    return {**(args or {}), **{k: v for k, v in glob.items() if k in taken and v is not None}}


def construct(name: str, cls, args, where: str):
    """``cls(**args)``; arguments it does not take refused, naming ``where.name`` and what it takes."""
    args = dict(args or {})
    try:
        inspect.signature(cls).bind(**args)
    except TypeError:
        accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
        raise PtocrError(f"{where}.{name}: arguments {sorted(args)} not understood; it takes "
                         f"{', '.join(accepted) or 'none'}") from None
    return cls(**args)


def _ops(section: dict, where: str) -> list[tuple[str, dict]]:
    ops = []
    for i, item in enumerate(section.get("transforms") or []):
        if not isinstance(item, dict) or len(item) != 1:
            raise PtocrError(f"{where}.transforms[{i}]: expected one 'OpName: arguments' mapping")
        (name, args), = item.items()
        ops.append((name, args or {}))
    if not ops or ops[0][0] != "DecodeImage":
        raise PtocrError(f"{where}.transforms: the list must start with DecodeImage")
    decode = ops[0][1]
    if decode.get("img_mode", "BGR") != "BGR" or decode.get("channel_first", False):
        raise PtocrError(f"{where}.transforms DecodeImage: only img_mode BGR, channel_first false (got {decode})")
    return ops[1:]


def _unsupported(name: str, task: str, where: str) -> PtocrError:
    """An op ``task``'s list cannot have, with the names closest to it."""
    known = sorted({n for n, (_, tasks) in TRANSFORMS.items() if task in tasks} | _TASK_DATASET_OPS[task])
    close = close_names(name, known)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return PtocrError(f"{where}.transforms: {name} is not supported for {task} by ptocr train{hint}; supported for "
                      f"{task}: {', '.join(known)}")


def _check_names(ops, task: str, where: str) -> None:
    """Every op a name ``task``'s list may have, checked before the list's order is: a misspelled
    ``KeepKey`` is named as such, not as a RecResizeImg that is not last before KeepKeys."""
    for name, _ in ops:
        if name not in _TASK_DATASET_OPS[task] and task not in TRANSFORMS.get(name, (None, ()))[1]:
            raise _unsupported(name, task, where)


def _split_resize(ops, name: str, where: str):
    """(ops before the resize op ``name``, its arguments); a rec / cls dataset returns its own keys,
    a superset of what the configs' KeepKeys name."""
    if ops and ops[-1][0] == "KeepKeys":
        ops = ops[:-1]
    if not ops or ops[-1][0] != name:
        raise PtocrError(f"{where}.transforms: {name} must be the last op before KeepKeys")
    return ops[:-1], ops[-1][1]


def _multi_label(args: dict, settings: DataSettings, where: str) -> MultiLabelEncode:
    unknown = set(args) - _MULTI_LABEL_KEYS
    if unknown:
        raise PtocrError(f"{where}.transforms MultiLabelEncode: unknown keys {sorted(unknown)}")
    ctc = settings.encoder  # max_text_length, dictionary: Global's, as tools/train.py fills them in
    return MultiLabelEncode(ctc.dictionary, ctc.max_text_length, ctc.dictionary.use_space_char,
                            gtc_encode=args.get("gtc_encode"))


def _compose(ops, task: str, where: str, encoder=None, glob=None) -> Compose:
    """The ops as transforms; a recognizer's label op is ``encoder`` (its dataset's)."""
    steps = []
    for name, args in ops:
        if name in ("CTCLabelEncode", "MultiLabelEncode") and task == "rec":
            steps.append(EncodeText(encoder))
            continue
        if name in _PLACES and name in _TASK_DATASET_OPS[task]:  # the task's own op, out of its place
            raise PtocrError(f"{where}.transforms: {name} {_PLACES[name]} (the list has it elsewhere)")
        if name not in TRANSFORMS or task not in TRANSFORMS[name][1]:
            raise _unsupported(name, task, where)
        cls = TRANSFORMS[name][0]
        args = {k: v for k, v in args.items() if (name, k) not in IGNORED_ARGS}
        steps.append(construct(name, cls, _with_global(cls, args, glob or {}), f"{where}.transforms"))
    return Compose(steps)


def _det_dataset(ops, common: dict, train: bool, where: str, settings: DataSettings):
    keep = None
    if ops and ops[-1][0] == "KeepKeys":
        keep = ops[-1][1].get("keep_keys")
        ops = ops[:-1]
    transforms = _compose(ops, "det", where, glob=settings.glob)
    return DetDataset(**common, train=train, transforms=transforms, keep_keys=keep)


def _multi_scale_ops(ops, where: str):
    """MultiScaleDataSet's ops: it runs all but the last (KeepKeys), then its own resize to the
    sampler's scale (RecResizeImg's padded one), then KeepKeys: a RecResizeImg would resize twice."""
    if any(name == "RecResizeImg" for name, _ in ops):
        raise PtocrError(f"{where}.transforms: MultiScaleDataSet resizes to Train.sampler's scales itself; "
                         "a RecResizeImg in its list would resize twice (use SimpleDataSet for a fixed size)")
    return ops[:-1] if ops and ops[-1][0] == "KeepKeys" else ops


def _rec_dataset(ops, common: dict, train: bool, where: str, settings: DataSettings, multi_scale: bool = False):
    if multi_scale:
        ops, resize_args = _multi_scale_ops(ops, where), None
    else:
        ops, resize_args = _split_resize(ops, "RecResizeImg", where)
    want = "MultiLabelEncode" if settings.multi_label else "CTCLabelEncode"
    names = [n for n, _ in ops]
    if names.count(want) != 1 or ({"MultiLabelEncode", "CTCLabelEncode"} - {want}) & set(names):
        why = "Loss MultiLoss trains on MultiLabelEncode's targets" if settings.multi_label else \
            "MultiLabelEncode goes with Loss MultiLoss"
        raise PtocrError(f"{where}.transforms: the recognizer's list needs {want} once ({why})")
    resize = None if multi_scale else construct("RecResizeImg", RecResizeImg, resize_args, f"{where}.transforms")
    encoder = _multi_label(ops[names.index(want)][1], settings, where) if settings.multi_label else settings.encoder
    # The encoder's labels are the dataset's keys; the config's own resize replaces the default.
    return RecDataset(**common, dictionary=encoder, train=train, resize=resize,
                      transforms=_compose(ops, "rec", where, encoder, settings.glob))


def _cls_dataset(ops, common: dict, train: bool, where: str, settings: DataSettings):
    ops, resize_args = _split_resize(ops, "ClsResizeImg", where)
    if not ops or ops[0][0] != "ClsLabelEncode":
        raise PtocrError(f"{where}.transforms: a classifier's list needs ClsLabelEncode right after DecodeImage")
    label_list = _with_global(ClsLabelEncode, ops[0][1], settings.glob).get("label_list", ["0", "180"])
    if settings.class_dim is not None and len(label_list) != settings.class_dim:
        raise PtocrError(f"{where}.transforms ClsLabelEncode: {len(label_list)} labels for ClsHead class_dim "
                         f"{settings.class_dim}")
    middle = _compose(ops[1:], "cls", where, glob=settings.glob) if ops[1:] else None
    shape = resize_args.get("image_shape", (3, 48, 192))
    return ClsDataset(**common, label_list=label_list, image_shape=shape, transforms=middle, train=train)


def build_dataset(section: dict, mode: str, settings: DataSettings):
    """The dataset of a config's ``Train`` or ``Eval`` section (``mode``)."""
    where = f"{mode}.dataset"
    spec = section.get("dataset")
    if not isinstance(spec, dict):
        raise PtocrError(f"{mode}: no dataset section")
    unknown = set(spec) - _DATASET_KEYS
    if unknown:
        raise PtocrError(f"{where}: unknown keys {sorted(unknown)} (ptocr train reads {', '.join(sorted(_DATASET_KEYS))})")
    name = spec.get("name", "SimpleDataSet")
    if name not in ("SimpleDataSet", "MultiScaleDataSet"):
        raise PtocrError(f"{where}.name {name!r} is not supported; supported: SimpleDataSet, MultiScaleDataSet "
                         "(with Train.sampler MultiScaleSampler)")
    # PaddleOCR's MultiScaleDataSet is indexed by the sampler's (w, h, i), SimpleDataSet by an int:
    # either without the other fails there.
    multi_scale = name == "MultiScaleDataSet"
    if multi_scale != bool(section.get("sampler")):
        raise PtocrError(f"{where}.name {name}: MultiScaleDataSet and {mode}.sampler MultiScaleSampler go together "
                         f"(PaddleOCR's {name} fails {'without' if multi_scale else 'with'} it)")
    if multi_scale and settings.task != "rec":
        raise PtocrError(f"{where}.name MultiScaleDataSet is a recognizer's")
    if spec.get("ds_width"):
        raise PtocrError(f"{where}.ds_width (widths from each image's ratio) is not supported")
    for key in ("data_dir", "label_file_list"):
        if not spec.get(key):
            raise PtocrError(f"{where}.{key} is not set (-o {where}.{key}=...)")
    common = {"label_files": spec["label_file_list"], "data_dir": spec["data_dir"],
              "ratio_list": spec.get("ratio_list", 1.0), "delimiter": spec.get("delimiter", "\t"),
              "seed": settings.seed, "on_error": "redraw"}  # a bad image or label: PaddleOCR logs and redraws
    ops, train = _ops(spec, where), mode == "Train"
    _check_names(ops, settings.task, where)
    if settings.task == "det":
        dataset = _det_dataset(ops, common, train, where, settings)
    elif settings.task == "rec":
        dataset = _rec_dataset(ops, common, train, where, settings, multi_scale)
    else:
        dataset = _cls_dataset(ops, common, train, where, settings)
    _check_ext_op_transform_idx(spec, dataset, where)
    return dataset


def _check_ext_op_transform_idx(spec: dict, dataset, where: str) -> None:
    """PaddleOCR puts the other samples an op takes (``ext_data_num``: RecConAug, CopyPaste) through
    the list's first ``ext_op_transform_idx`` ops (2 by default); ptocr through the ops before that
    op. Equal where the index is that op's own (DecodeImage is op 0): any other is refused."""
    position, count = ext_data_step(dataset.transforms)
    index = spec.get("ext_op_transform_idx", 2)
    if count and getattr(dataset, "train", True) and index != position + 1:
        op = type(dataset.transforms.transforms[position]).__name__
        why = f"{op} itself (PaddleOCR's own run then fails on their missing ext_data and redraws the sample)" \
            if index > position + 1 else f"fewer ops than the {position + 1} before {op}"
        default = "" if "ext_op_transform_idx" in spec else " (the default)"
        raise PtocrError(f"{where}.ext_op_transform_idx {index}{default}: puts {op}'s other samples through {why}; "
                         f"ptocr takes them through the ops before {op}: set -o {where}.ext_op_transform_idx="
                         f"{position + 1}")


def _sampler(section: dict, dataset, seed: int, num_replicas: int, rank: int) -> MultiScaleSampler:
    spec = dict(section["sampler"])
    unknown = set(spec) - _SAMPLER_KEYS
    if spec.get("name") != "MultiScaleSampler" or unknown:
        raise PtocrError(f"Train.sampler: only MultiScaleSampler with {', '.join(sorted(_SAMPLER_KEYS - {'name'}))} "
                         f"is supported (got {spec.get('name')!r}{f', unknown keys {sorted(unknown)}' if unknown else ''})")
    if not isinstance(dataset, RecDataset):
        raise PtocrError("Train.sampler MultiScaleSampler is a recognizer's")
    spec.pop("name")
    return MultiScaleSampler(len(dataset), seed=seed, num_replicas=num_replicas, rank=rank, **spec)


def build_loader(section: dict, mode: str, dataset, seed: int = 1024, num_replicas: int = 1,
                 rank: int = 0) -> DataLoader:
    """A config section's ``loader`` (and ``sampler``) over ``dataset``. With ``num_replicas`` > 1
    (several training processes), Train's batches are replica ``rank``'s share, as PaddleOCR's
    ``build_dataloader`` splits them (``DistributedBatchSampler``, or MultiScaleSampler's own
    split); Eval stays whole (PaddleOCR's ``BatchSampler``: rank 0 evaluates alone)."""
    loader = section.get("loader") or {}
    unknown = set(loader) - _LOADER_KEYS
    if unknown:
        raise PtocrError(f"{mode}.loader: unknown keys {sorted(unknown)} (ptocr train reads "
                         f"{', '.join(sorted(_LOADER_KEYS))})")
    if "batch_size_per_card" not in loader:
        raise PtocrError(f"{mode}.loader.batch_size_per_card is not set")
    # Checked here, as Global's counts are: torch's own ValueError would be a traceback.
    for key, least, default in (("batch_size_per_card", 1, None), ("num_workers", 0, 0)):
        value = loader.get(key, default)
        if not whole_number(value, least):
            raise PtocrError(f"{mode}.loader.{key}={value!r}: a whole number of at least {least}")
    workers = loader.get("num_workers", 0)
    if section.get("sampler"):
        if mode != "Train":
            raise PtocrError(f"{mode}.sampler: only Train takes a sampler")
        return DataLoader(dataset, batch_sampler=_sampler(section, dataset, seed, num_replicas, rank),
                          collate_fn=collate, num_workers=workers)
    batch_size, shuffle, drop_last = (loader["batch_size_per_card"], bool(loader.get("shuffle", False)),
                                      bool(loader.get("drop_last", False)))
    if mode == "Train" and num_replicas > 1:
        sampler = DistributedBatchSampler(len(dataset), batch_size, num_replicas, rank, shuffle, drop_last)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=workers)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=workers,
                      collate_fn=collate)
