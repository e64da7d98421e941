"""PaddleOCR's training config: the YAML file, ``-o Key.sub=value`` overrides, the sections read.

As PaddleOCR's ``tools/program.py`` (``load_config``, ``ArgsParser._parse_opt``, ``merge_config``):
an override's value is parsed as YAML (``-o Global.epoch_num=3``, ``Global.use_gpu=false``,
``Train.dataset.label_file_list=[a.txt,b.txt]``); its first key must be a section of the config,
the keys between must name mappings. What :mod:`ptocr.training.trainer` does not read is refused
here by name (``GLOBAL_KEYS``), never passed over silently.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import yaml

from ptocr.errors import PtocrError, close_names
from ptocr.training.amp import MixedPrecision

__all__ = ["load_config", "apply_overrides", "check_config", "read_config", "SECTIONS", "REQUIRED", "EVAL_REQUIRED",
           "GLOBAL_KEYS", "HARMLESS"]

# tools/train.py's sections; Eval may be absent (no evaluation, no best_accuracy).
SECTIONS = ("Global", "Architecture", "Loss", "Optimizer", "PostProcess", "Metric", "Train", "Eval")
REQUIRED = ("Global", "Architecture", "Loss", "Optimizer", "PostProcess", "Metric", "Train")
# tools/eval.py's: it builds no Train data, Loss or Optimizer (accepted when there, not read).
EVAL_REQUIRED = ("Global", "Architecture", "PostProcess", "Metric", "Eval")

# Global keys whose value makes no difference to PaddleOCR's own training, with why.
HARMLESS = {
    "distributed": "tools/program.py's preprocess overwrites it with dist.get_world_size() != 1; ptocr takes "
                   "the world size from torchrun's environment (WORLD_SIZE) likewise",
    "d2s_train_image_shape": "read only with Global.to_static (refused unless off) and by the exporter",
    "load_static_weights": "PaddleOCR 2.0's switch for static-graph backbone weights; its load_model no longer "
                           "reads it, and ptocr reads each weight format by itself",
}
# Global keys: read by the trainer (the op / post-processing arguments of the same name among them:
# tools/train.py merges Global into every transform op and the PostProcess) / read elsewhere in
# PaddleOCR (tools/infer*, export), so no meaning here / harmless (above) / accepted only switched
# off (a feature not reproduced).
GLOBAL_KEYS = {
    "read": {"use_gpu", "epoch_num", "log_smooth_window", "print_batch_step", "save_model_dir", "save_epoch_step",
             "eval_batch_step", "cal_metric_during_train", "calc_epoch_interval", "pretrained_model", "checkpoints",
             "character_dict_path", "use_space_char", "max_text_length", "seed", "label_list",
             "log_ranks", "find_unused_parameters", "use_sync_bn", "use_amp", "amp_level", "amp_dtype", "scale_loss",
             "use_dynamic_loss_scaling", "amp_custom_black_list", "amp_custom_white_list"},
    "other_tools": {"debug", "infer_img", "save_inference_dir", "infer_mode", "character_type", "save_res_path",
                    "print_mem_info", "model_name", "pdx_model_name", "use_tensorrt", "export_with_pir"},
    "harmless": set(HARMLESS),
    "off_only": {"use_visualdl", "use_wandb", "uniform_output_enabled", "use_xpu", "use_npu", "use_mlu", "use_gcu",
                 "to_static", "eval_batch_epoch"},
}


def load_config(path: str | os.PathLike) -> dict:
    """A PaddleOCR config file (``.yml`` / ``.yaml``) as a dict."""
    path = Path(path)
    if path.suffix not in (".yml", ".yaml"):
        raise PtocrError(f"{path}: a PaddleOCR config is a .yml file")
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError) as e:
        raise PtocrError(f"{path}: cannot read the config ({getattr(e, 'strerror', None) or e})") from None
    except yaml.YAMLError as e:
        raise PtocrError(f"{path}: not YAML ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if not isinstance(config, dict):
        raise PtocrError(f"{path}: a PaddleOCR config is a mapping of sections (Global, Architecture, ...)")
    return config


def _parse_override(text: str) -> tuple[str, object]:
    key, sep, value = text.strip().partition("=")
    if not sep or not key:
        raise PtocrError(f"-o {text!r}: expected Key.sub=value (e.g. Global.epoch_num=10)")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError:
        raise PtocrError(f"-o {key}: the value {value!r} is not a YAML scalar or list") from None


def apply_overrides(config: dict, overrides) -> dict:
    """``config`` (a copy) with ``overrides`` (``["Global.epoch_num=3", ...]`` or a dict of dotted
    keys to values) merged in as PaddleOCR's ``merge_config`` merges them."""
    config = copy.deepcopy(config)
    items = overrides.items() if isinstance(overrides, dict) else [_parse_override(o) for o in overrides or ()]
    for key, value in items:
        first, *rest = key.split(".")
        if not rest:
            if isinstance(value, dict) and isinstance(config.get(first), dict):
                config[first].update(value)
            else:
                config[first] = value
            continue
        if first not in config:
            raise PtocrError(f"-o {key}: the config has no section {first!r} (it has {', '.join(config)})")
        node = config[first]
        for depth, sub in enumerate(rest[:-1], start=1):
            if not isinstance(node, dict) or sub not in node or not isinstance(node[sub], dict):
                where = ".".join([first, *rest[:depth]])
                raise PtocrError(f"-o {key}: {where} is not a mapping in the config")
            node = node[sub]
        if not isinstance(node, dict):
            raise PtocrError(f"-o {key}: {'.'.join([first, *rest[:-1]])} is not a mapping in the config")
        node[rest[-1]] = value
    return config


# Global counts the loop divides by or sizes with: a 0 or a string would fail deep inside it.
POSITIVE_INTS = ("epoch_num", "print_batch_step", "save_epoch_step", "log_smooth_window", "calc_epoch_interval",
                 "max_text_length")


def _check_global(section: dict, command: str) -> None:
    known = set().union(*GLOBAL_KEYS.values())
    for key, value in section.items():
        if key not in known:
            close = close_names(key, known)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise PtocrError(f"Global.{key} is not a setting ptocr {command} reads{hint}; it reads: "
                             f"{', '.join(sorted(GLOBAL_KEYS['read']))}")
        if key in GLOBAL_KEYS["off_only"] and value not in (None, False):
            raise PtocrError(f"Global.{key}={value!r} is not supported by ptocr {command} (leave it off)")
        if key in POSITIVE_INTS and value is not None and not whole_number(value):
            raise PtocrError(f"Global.{key}={value!r}: a whole number of at least 1")
    steps = section.get("eval_batch_step")  # [start, every], or every alone (program.py takes both)
    pair = steps if isinstance(steps, (list, tuple)) and len(steps) >= 2 else [0, steps]
    if steps is not None and not (whole_number(pair[0], 0) and whole_number(pair[1])):
        raise PtocrError(f"Global.eval_batch_step={steps!r}: [start, every] or every, every at least 1 (e.g. [0, 2000])")
    MixedPrecision.from_global(section)  # use_amp and its settings, refused here where bad
    seed = section.get("seed")
    if seed is not None and not whole_number(seed, 0):
        raise PtocrError(f"Global.seed={seed!r}: a whole number (0 or more)")


def whole_number(value, least: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def check_config(config: dict, required=REQUIRED, command: str = "train") -> dict:
    """``config`` with its sections checked: all of ``required`` present, none unknown
    (``command``, train or eval, names the tool in the errors)."""
    unknown = [k for k in config if k not in SECTIONS and k != "profiler_options"]
    if unknown:
        raise PtocrError(f"config section {unknown[0]!r} is not supported by ptocr {command}; sections read: "
                         f"{', '.join(SECTIONS)}")
    missing = [k for k in required if not isinstance(config.get(k), dict)]
    if missing:
        raise PtocrError(f"the config has no {missing[0]} section (a mapping); ptocr {command} needs "
                         f"{', '.join(required)}")
    if config.get("profiler_options"):
        raise PtocrError(f"profiler_options is not supported by ptocr {command}")
    _check_global(config["Global"], command)
    return config


def read_config(config, overrides=(), required=REQUIRED, command: str = "train") -> dict:
    """A path or a dict, with ``overrides``, checked (:func:`check_config`): what the trainer runs from."""
    base = load_config(config) if isinstance(config, (str, os.PathLike)) else copy.deepcopy(config)
    if not isinstance(base, dict):
        raise PtocrError(f"config must be a .yml path or a dict, not {type(config).__name__}")
    return check_config(apply_overrides(base, overrides), required, command)
