"""Conversion: Paddle source -> mapped state dict -> strictly loaded PyTorch model.

``convert`` is the whole flow short of writing (``converter.writer``) so that
``ptocr.load`` can convert a Paddle folder in memory and ``ptocr-convert`` can write it.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from converter.alignment import align_source
from converter.errors import ArchitectureError, DictionaryError, FormatError, MappingError
from converter.mapping import MappingResult, Target, apply, plan
from converter.readers import PaddleSource, read_source
from converter.readers.formats import PADDLE2_INFERENCE, PADDLE3_PIR
from converter.tables import get_table
from ptocr.architectures import (
    ALIASES,
    ARCHITECTURES,
    CLASS_COUNT_KEYS,
    aliases_of,
    canonical_name,
    get_architecture,
    list_architectures,
    with_overrides,
)
from ptocr.checkpoint import model_from_state
from ptocr.dictionary import Dictionary, builtin_dictionary, parse_dictionary, read_dictionary
from ptocr.errors import PtocrError, close_names
from ptocr.manifest import ModelEntry, load_manifest
from ptocr.models.build import build_model
from ptocr.models.model import OCRModel
from ptocr.postprocess import DBPostProcess
from ptocr.transforms import ImageClsPreprocess
from ptocr.version import __version__

# Dictionary files PaddleOCR model folders commonly ship beside the weights.
_DICT_GLOBS = ("*dict*.txt", "*keys*.txt")


@dataclass
class Fit:
    """An architecture (in one form) that the source's tensors fill exactly."""

    arch_name: str
    form: str | None
    model_cfg: dict
    mapping: MappingResult


@dataclass
class Conversion:
    arch_name: str
    arch: dict
    form: str | None
    source: PaddleSource
    mapping: MappingResult
    model: OCRModel
    dictionary: Dictionary | None
    config: dict = field(default_factory=dict)

    @property
    def state_dict(self) -> dict[str, torch.Tensor]:
        # Paddle's weights are float32; the modules a model computes in float64 hold them
        # widened (exactly): they are written as the source gave them.
        return {k: v.float() if v.dtype == torch.float64 else v for k, v in self.model.state_dict().items()}


def convert(
    src: str | os.PathLike,
    arch: str | None = None,
    *,
    dictionary: str | os.PathLike | None = None,
    use_space_char: bool | None = None,
    submodel: str | None = None,
) -> Conversion:
    """Convert ``src``. ``arch``: a registered architecture, an official model name of the
    manifest (its architecture, dictionary and settings), or None to detect it; a folder
    named after a manifest model (``<name>_infer``, ``<name>_train...``), or holding its
    official weights (by sha256), gets that model's dictionary and settings too."""
    if arch is not None:
        _check_arch_name(arch)
    source = read_source(src, submodel=submodel)
    # A model name given as ``arch`` wins; an architecture name that is also a model's
    # (ch_PP-OCRv3_rec) says less than a folder named after a model (arabic_PP-OCRv3_rec_infer).
    by_arg = manifest_model(arch) if arch is not None else None
    by_folder = manifest_model(_model_name_of(source.path))
    # The released weights themselves (their sha256 is in the manifest) say more than a name.
    by_weights = _manifest_model_with_weights(source.weights_sha256)
    # --arch naming a zoo model (not an architecture) wins, and claims its dictionary: it must fit
    named_model = by_arg is not None and arch not in ARCHITECTURES
    known = by_arg if named_model else (by_weights or by_folder or by_arg)
    if arch is not None and known is not None and known.name == arch:
        arch = known.architecture
    if arch is None:
        fit = detect_architecture(source)
    else:
        fit = _fit_given(source, arch)
    spec = get_architecture(fit.arch_name)
    if known is not None and canonical_name(known.architecture) != fit.arch_name:
        known = None  # a folder named like a model it is not: the name says nothing
    model_cfg = fit.model_cfg
    if known is not None and known.float64_modules:  # where its float32 rounding scatters
        model_cfg = {**model_cfg, "float64_modules": known.float64_modules}
    model = model_from_state(model_cfg, _tensors(fit.mapping), where=str(source.path))
    dic = _resolve_dictionary(spec, source, fit.model_cfg, dictionary, use_space_char,
                              known.dictionary if known is not None else None,
                              claimed_by=(known.name, fit.arch_name) if named_model and known is by_arg else None)
    config = {
        "architecture": fit.arch_name,
        "task": spec["task"],
        "form": fit.form,
        "model": model_cfg,
        "preprocess": {**_preprocess_of(spec, source), **(known.preprocess if known else {})},
        "postprocess": {**spec.get("postprocess", {}), **_db_postprocess_of(spec, source),
                        **_paddle2_text_order(dic, dictionary, known), **(known.postprocess if known else {})},
        "source": {
            "name": _source_name(source),
            "format": source.format,
            "weights_file": Path(source.weights_file).name,
            "sha256": source.weights_sha256,
            "submodel": source.submodel,
        },
        "converter_version": __version__,
    }
    stated = _stated_model_name(source, known)
    if known is not None:
        config["model_name"] = known.name
        if known.inference:  # how ptocr.load optimizes it (ptocr.optimize.INFERENCE_OPTIONS)
            config["inference"] = dict(known.inference)
    elif stated is not None:
        # What paddlex keys on (python-bidi for the Arabic recognizers), kept apart from model_name:
        # a name the file states is no proof of the release (the zoo's origin check reads model_name).
        config["stated_model_name"] = stated
    if dic is not None:
        config["dictionary"] = {
            "use_space_char": dic.use_space_char,
            "num_characters": len(dic.characters),
            "sha256": dic.sha256(),
            "source": Path(dic.source).name,
        }
    return Conversion(fit.arch_name, spec, fit.form, source, fit.mapping, model, dic, config)


def _stated_model_name(source: PaddleSource, known: ModelEntry | None) -> str | None:
    """The model name a Paddle 3 folder's inference.yml states (``Global.model_name``), which
    paddlex reads as the model's name (fine-tuned weights keep their base model's). A zoo model
    the weights or the folder name identified keeps its name: the note says where they differ."""
    stated = source.config.model_name if source.config is not None else None
    if stated and known is not None and stated != known.name:
        source.notes.append(f"{source.config.path.name} names the model {stated}; recorded as {known.name}, "
                            "which its weights or folder name identify")
    return stated or None


def _paddle2_text_order(dic: Dictionary | None, explicit, known: ModelEntry | None) -> dict:
    """PaddleOCR 2.x's rule for a recognizer's text order: texts are reversed (``pred_reverse``)
    when the dictionary path holds "arabic". The path is ``--dict`` as given, else the manifest's
    dictionary file for the named model, else the file the characters came from."""
    if dic is None:
        return {}
    path = str(explicit) if explicit is not None else ((known.dictionary or {}).get("file") if known else None)
    return {"reverse": True} if "arabic" in (path or Path(dic.source).name) else {}


# The DBPostProcess settings a Paddle 3 detector's inference.yml states, which paddlex's text
# detector runs with: box_type "poly" for the seal detectors, their thresholds 0.2 / 0.6 / 0.5.
_DB_YML_KEYS = {"thresh": float, "box_thresh": float, "max_candidates": int, "unclip_ratio": float,
                "use_dilation": bool, "score_mode": str, "box_type": str}


def _db_postprocess_of(spec: dict, source: PaddleSource) -> dict:
    """A detector's DBPostProcess settings from its inference.yml (none for other sources)."""
    post = ((source.config.data if source.config else None) or {}).get("PostProcess")
    if spec["task"] != "det" or not isinstance(post, dict) or post.get("name") != "DBPostProcess":
        return {}
    settings = {}
    for key, kind in _DB_YML_KEYS.items():
        if key in post:
            value = post[key]
            whole = isinstance(value, int) and not isinstance(value, bool)
            if not {float: whole or isinstance(value, float), int: whole}.get(kind, isinstance(value, kind)):
                raise FormatError(f"{source.config.path}: PostProcess.{key}: expected {kind.__name__}, got {value!r}")
            settings[key] = kind(value)
    try:
        DBPostProcess(**settings)  # its own checks of box_type, score_mode
    except ValueError as e:
        raise FormatError(f"{source.config.path}: PostProcess: {e}") from None
    return settings


def _preprocess_of(spec: dict, source: PaddleSource) -> dict:
    """The architecture's pre-processing settings, or for a classifier whose inference.yml
    lists its PaddleX image-classification steps, the settings those steps give."""
    ops = (((source.config.data if source.config else None) or {}).get("PreProcess") or {}).get("transform_ops")
    if spec["task"] != "cls" or not ops:
        return dict(spec.get("preprocess", {}))
    try:
        return ImageClsPreprocess.settings_from_transform_ops(ops)
    except (ValueError, TypeError) as e:
        raise FormatError(f"{source.config.path}: PreProcess.transform_ops: {e}") from e


def fit_architecture(source: PaddleSource, arch_name: str) -> Fit:
    """Map the source onto ``arch_name``, trying each of its forms; raise if none fits."""
    arch_name = canonical_name(arch_name)
    spec = get_architecture(arch_name)
    rules = get_table(spec["family"])
    failures, fewest = [], None
    for form, overrides in _forms(spec):
        cfg = with_overrides(spec["model"], *overrides)
        try:
            what = f"{source.path} as {arch_name}" + (f" ({form})" if form else "")
            if not source.structured:  # Paddle 3 (PIR): no layer names, placed by the graph
                mapping = align_source(source, cfg, spec["task"], what=what)
                _check_labels(cfg.get("head", {}).get("num_classes"), spec, what)
            else:
                _set_class_count(cfg, spec, source, rules, what)
                target = _target(cfg)
                mapping = apply(source.tensors, rules, target, what=what)
        except (MappingError, ArchitectureError) as e:
            failures.append(str(e))
            count = getattr(e, "mismatches", None)
            fewest = count if fewest is None or (count is not None and count < fewest) else fewest
            continue
        return Fit(arch_name, form, cfg, mapping)
    error = MappingError("\n".join(failures))
    error.mismatches = fewest
    raise error


def _fit_given(source: PaddleSource, arch: str) -> Fit:
    """``fit_architecture`` for ``--arch``; where the source is another architecture (a
    recognizer given a detector's name), that one line says so instead of every key that differs."""
    try:
        return fit_architecture(source, arch)
    except MappingError as e:
        try:
            fits = detect_architecture(source).arch_name
        except (MappingError, ArchitectureError):  # no other fits: the keys that differ are the answer
            raise e from None
        raise ArchitectureError(f"{source.path} is not {canonical_name(arch)}: it is {_named(fits)}; "
                                f"give --arch {fits} (arch= from Python) or leave it out") from None


def detect_architecture(source: PaddleSource) -> Fit:
    """The one registered architecture the source fits exactly, or a clear error."""
    fits, near = [], []
    for name in list_architectures():
        try:
            fits.append(fit_architecture(source, name))
        except (MappingError, ArchitectureError) as e:
            mismatches = getattr(e, "mismatches", None)
            near.append((float("inf") if mismatches is None else mismatches, name))
    if len(fits) == 1:
        return fits[0]
    if fits:
        raise ArchitectureError(
            f"{source.path} fits several architectures equally ({', '.join(_named(f.arch_name) for f in fits)}); "
            "choose one with --arch (arch= from Python)"
        )
    model = getattr(getattr(source, "program", None), "model", None)
    if getattr(model, "producer", None) == "pytorch":  # ptocr export's own ONNX, say: no "closest" means anything
        raise ArchitectureError(
            f"{source.path} fits no registered architecture: it is an ONNX export by PyTorch "
            f"({model.producer} {model.producer_version}), e.g. `ptocr export`'s, whose graph is the optimized "
            "network (batch norms folded), not a PP-OCR program; convert the Paddle model, or load the "
            ".safetensors it was exported from")
    closest = ", ".join(f"{_named(name)} ({n} mismatching keys)" for n, name in sorted(near)[:3])
    raise ArchitectureError(
        f"{source.path} fits no registered architecture (closest: {closest}); "
        f"pass --arch NAME (arch= from Python) to see exactly which tensors differ"
    )


def _target(cfg: dict) -> Target:
    """Names, shapes and layouts of the network ``cfg`` describes (built once per description:
    detection tries every architecture and form on every conversion)."""
    return _target_of(json.dumps(cfg, sort_keys=True))


@functools.lru_cache(maxsize=256)
def _target_of(cfg_json: str) -> Target:
    return Target.from_module(build_model(json.loads(cfg_json), device="meta"))


def _named(arch_name: str) -> str:
    """The architecture with the other official names it was released under."""
    also = aliases_of(arch_name)
    return arch_name + (f" (also released as {', '.join(also)})" if also else "")


def _set_class_count(cfg: dict, spec: dict, source: PaddleSource, rules, what: str) -> None:
    """Size the head from the source: the class count is data, not architecture, except for a
    classifier whose architecture names its labels (a 2-class PP-LCNet checkpoint is not the
    4-class document model with a resized head)."""
    key = CLASS_COUNT_KEYS.get(spec["task"])
    if key is None:
        return
    target = _target(cfg)
    src = next((e.source for e in plan(source.tensors, rules) if e.target == key), None)
    if src is None:
        return  # keep the default; the full mapping then reports what does not fit
    shape = source.tensors[src].shape
    # Paddle Linear weights are [in, out]; a conv classifier would be [out, in, ...].
    count = int(shape[-1] if key in target.linear_weights else shape[0])
    _check_labels(count, spec, what)
    cfg["head"]["num_classes"] = count


def _check_labels(count: int | None, spec: dict, what: str) -> None:
    labels = (spec.get("postprocess") or {}).get("labels")
    if spec["task"] == "cls" and labels and count != len(labels):
        error = MappingError(f"{what}: the source has {count} classes, the architecture's labels are {labels}")
        error.mismatches = 1  # one tensor pair (the class weight) differs: ranks it closest
        raise error


def _resolve_dictionary(spec, source, model_cfg, explicit, use_space_char, known=None,
                        claimed_by: tuple[str, str] | None = None) -> Dictionary | None:
    """The recognizer's dictionary: ``--dict`` (must fit), else the first that fits the head
    of: the characters the folder's inference.yml lists, the manifest's dictionary for the
    named model, a dictionary file beside the model, the architecture's default. Without an
    explicit ``use_space_char`` both settings are tried (the model's own first). ``claimed_by``:
    (model, architecture) when ``--arch`` named a zoo model; then only the file's own and that model's dictionary may
    fit (another would give a file labelled as that model with someone else's dictionary)."""
    if spec["task"] != "rec":
        given = "--dict" if explicit is not None else "--use-space-char" if use_space_char is not None else None
        if given:
            raise DictionaryError(f"{given} was given but {spec['task']} models have no dictionary")
        return None
    num_classes = model_cfg["head"]["num_classes"]
    what = f"the head of {source.path}"
    default = spec.get("dictionary", {})
    if explicit is not None:
        space = default.get("use_space_char", True) if use_space_char is None else use_space_char
        dic = read_dictionary(explicit, space)
        dic.check_fits(num_classes, what)
        return dic
    candidates: list[tuple[str, Callable[[bool], Dictionary], bool]] = []  # (name, make, preferred space)
    if getattr(source, "dictionary", None):
        text = "\n".join(source.dictionary)
        label, origin = source.dictionary_origin
        candidates.append((label, lambda sp: parse_dictionary(text, sp, origin), True))
    if known:
        candidates.append((f"{known['file']} (manifest)", lambda sp: builtin_dictionary(known["file"], sp),
                           known.get("use_space_char", True)))
    tried: list[str] = []
    # The model's own (and the manifest's) first: loose .txt files beside it, such as the
    # .dict.txt of earlier conversions into that folder, matter only where neither fits.
    dic = _first_fitting(candidates, num_classes, use_space_char, tried, source.notes)
    if dic is not None:
        return dic
    folder = [] if claimed_by else _folder_dictionaries(source)
    if len(folder) > 1:
        names = ", ".join(p.name for p in folder)
        raise DictionaryError(f"{source.path} holds several dictionaries ({names}); choose one with --dict")
    candidates = [(path.name, lambda sp, path=path: read_dictionary(path, sp), default.get("use_space_char", True))
                  for path in folder]
    if "builtin" in default and not claimed_by:
        candidates.append((f"{default['builtin']} (default)", lambda sp: builtin_dictionary(default["builtin"], sp),
                           default.get("use_space_char", True)))
    dic = _first_fitting(candidates, num_classes, use_space_char, tried, source.notes)
    if dic is not None:
        return dic
    if not tried:
        raise DictionaryError(f"{source.path} has no dictionary beside it; give one with --dict")
    if claimed_by:
        model, arch = claimed_by
        raise DictionaryError(f"--arch {model}: its dictionary does not fit {what} ({num_classes} classes): tried "
                              f"{'; '.join(tried)}; these weights are not {model}'s: convert them with "
                              f"ptocr-convert --arch {arch} --dict YOUR_DICTIONARY")
    raise DictionaryError(f"no dictionary fits {what} ({num_classes} classes): tried {'; '.join(tried)}; "
                          "give the right one with --dict")


def _first_fitting(candidates, num_classes: int, use_space_char: bool | None, tried: list[str],
                   notes: list[str]) -> Dictionary | None:
    """The first candidate dictionary (with either space setting unless one is given) that has
    ``num_classes`` classes; what did not fit is added to ``tried``. The one taken goes into
    ``notes``, with what was passed over (a source's own list that does not fit is worth saying)."""
    for name, make, preferred in candidates:
        for space in ([use_space_char] if use_space_char is not None else [preferred, not preferred]):
            dic = make(space)
            if dic.num_classes == num_classes:
                passed = f" (did not fit: {'; '.join(tried)})" if tried else ""
                notes.append(f"dictionary: {name} with{'' if space else 'out'} space, "
                             f"{len(dic.characters)} characters{passed}")
                return dic
            tried.append(f"{name} with{'' if space else 'out'} space: {dic.num_classes} classes")
    return None


def _model_name_of(path) -> str:
    """The official model name a Paddle folder is called after (``<name>_infer``, ``<name>_train...``),
    also when given as ``.`` or as a file name relative to the current folder."""
    p = _absolute(path)
    name = (p if p.is_dir() else p.parent).name
    return re.sub(r"_(infer|train)(_[A-Za-z0-9]+)*$", "", name)


def _source_name(source: PaddleSource) -> str:
    """The folder of an inference model however it was given ("." or one of its files), else the
    file (a training checkpoint, an ONNX export): the same model gets the same name."""
    p = _absolute(source.path)
    return p.parent.name if p.is_file() and source.format in (PADDLE2_INFERENCE, PADDLE3_PIR) else p.name


def _absolute(path) -> Path:
    """``path`` made absolute without following links (a linked folder keeps its own name)."""
    return Path(os.path.abspath(path))


def _check_arch_name(arch: str) -> None:
    """``--arch`` names an architecture or a zoo model: an unknown name is refused before the
    source is read, with the closest names of both kinds."""
    if arch in ARCHITECTURES or arch in ALIASES or manifest_model(arch) is not None:
        return
    close = close_names(arch, {*ARCHITECTURES, *ALIASES, *_manifest_models()})
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ArchitectureError(f"unknown architecture or model name {arch!r}{hint} "
                            "(ptocr-convert --list or ptocr.list_architectures(): the architectures; "
                            "ptocr list: the models)")


def manifest_model(name: str | None):
    """The manifest's entry for ``name`` when it is a model name there (some are also the name
    of their architecture: ch_PP-OCRv4_rec, PP-OCRv5_server_rec)."""
    models = _manifest_models()
    return ModelEntry(name, models[name]) if name and name in models else None


def _manifest_model_with_weights(sha256: str):
    """The manifest entry whose official weights file has this sha256, if one has."""
    return next((ModelEntry(name, e) for name, e in _manifest_models().items()
                 if (e.get("source") or {}).get("pdiparams_sha256") == sha256), None)


def _manifest_models() -> dict:
    """The manifest's models; none when it cannot be read (names and weights then say nothing)."""
    try:
        return load_manifest().models
    except PtocrError:
        return {}


def _folder_dictionaries(source: PaddleSource) -> list[Path]:
    folder = Path(source.path)
    folder = folder if folder.is_dir() else folder.parent
    found = {p for g in _DICT_GLOBS for p in folder.glob(g) if p.is_file()}
    return sorted(found)


def _forms(spec: dict) -> list[tuple[str | None, list[dict]]]:
    """Every combination of the architecture's form groups, e.g. ("fused, inference head", [...])."""
    groups = list((spec.get("forms") or {}).values())
    if not groups:
        return [(None, [])]
    combos = itertools.product(*(list(g.items()) for g in groups))
    return [(", ".join(name for name, _ in combo), [o for _, o in combo]) for combo in combos]


def _tensors(mapping: MappingResult) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v.copy() if not v.flags.writeable else v) for k, v in mapping.state_dict.items()}
