"""PaddleOCR's training recipe for ptocr networks: optimizer, per-iteration LR schedule, grad clip.

PaddleOCR builds its optimizer from a config's ``Optimizer:`` section (``ppocr/optimizer/``) and
the networks give some parameters their own ``ParamAttr``: a learning-rate multiplier (PPLCNetV3's
and PPHGNetV2's ``lr_mult_list``, learnable affine blocks at ``lab_lr`` of it) or their own L2
regularizer (``L2Decay(0.0)`` on many batch norms, CTCHead's ``fc_decay``), which replaces the
optimizer-level L2. This module rebuilds that in PyTorch::

    from ptocr.training import create_optimizer

    net = ptocr.create_model("ch_PP-OCRv4_rec", pretrained=True).train()
    recipe = create_optimizer(net, "PP-OCRv4_mobile_rec.yml", epochs=50, steps_per_epoch=len(loader))
    for epoch in range(50):
        for batch in loader:
            loss = criterion(net(batch["image"]), batch)
            recipe.optimizer.zero_grad()
            loss.backward()
            recipe.step()        # clip_grad(), optimizer.step(), scheduler.step(): Paddle's order

``create_optimizer(net, config, epochs, steps_per_epoch, architecture=None)`` takes the
``Optimizer:`` dict (as ``yaml.safe_load`` gives it), a whole PaddleOCR config dict, or the path
of a config ``.yml``. A whole config also supplies its ``Architecture:`` section, whose
``Backbone.lr_mult_list`` / ``Backbone.lab_lr`` / CTCHead ``fc_decay`` change the parameter
attributes; pass ``architecture=`` to give them with a bare ``Optimizer:`` dict (without them the
defaults of Paddle's classes apply: CTCHead ``fc_decay`` 0.0004, not the 1e-5 most configs set).
It returns a :class:`TrainingRecipe`: ``optimizer`` (a ``torch.optim.Optimizer`` whose groups
carry ``lr_scale`` and ``weight_decay`` per parameter set), ``scheduler`` (a ``LambdaLR`` stepped
once per iteration; ``lr_at(i)`` is iteration i's base LR) and ``clip_grad()``.
``param_groups(net, ...)`` gives the groups alone (timm's ``param_groups_weight_decay``'s role)
and ``paddle_lr_schedule(lr_config, epochs, steps_per_epoch)`` the schedule alone.

Supported (what PP-OCR configs use), everything else refused with an error:

* ``name``: ``Adam``, ``AdamW``, ``Momentum``, ``RMSProp`` (PaddleOCR's ``optimizer.py`` has no
  SGD wrapper: ``Momentum`` is its SGD). Adam/Momentum/RMSProp decay is L2 added to the gradient
  after clipping (Paddle's ``weight_decay=float``); AdamW's is decoupled, 0.01 when the config
  has no regularizer (PaddleOCR's default), off for ``no_weight_decay_name`` substrings and, with
  ``one_dim_param_no_weight_decay``, 1-D parameters; a parameter's own L2 (``fc_decay``) is
  still added to its gradient there, as Paddle's ``append_regularization_ops`` does.
* ``lr.name``: ``Cosine``, ``Piecewise``, ``Linear``, ``Const`` (or none), each with
  ``warmup_epoch`` (``round(warmup_epoch * steps_per_epoch)`` steps from 0, then the schedule
  from its own step 0: Cosine's ``T_max`` stays ``epochs * steps_per_epoch``).
* ``regularizer``: ``L2`` / ``L2Decay`` with ``factor``, or a bare ``weight_decay`` number.
* ``clip_norm``: each gradient tensor scaled to at most that norm (``ClipGradByNorm``);
  ``clip_norm_global``: all together (``ClipGradByGlobalNorm``); scale ``c / max(norm, c)``.

Parameter attributes are data (``COMPONENT_RULES``): per backbone/neck/head class name of
``net.config["model"]``, regular expressions on the parameter's name inside the component. A
component without rules (UVDoc's, which PaddleOCR does not train) is refused.

The PP-LCNet orientation classifiers (backbone ``PPLCNet``) are trained with PaddleClas, whose
``Optimizer:`` differs; for them the section is read as PaddleClas's (``ppcls/optimizer/``):
``Momentum`` only (``momentum``, ``use_nesterov``, ``no_weight_decay_name`` matched on the
classifier's own names, ``one_dim_param_no_weight_decay`` honoured only beside it; with them
paddle's parameter groups reset every ParamAttr: lr 1, decay the group's), regularizer
``L2`` with ``coeff``, ``clip_norm``, and ``lr`` ``Cosine`` (``eta_min``, ``warmup_start_lr``,
cosine over the epochs after the warmup) or a bare ``learning_rate``; a whole config's ``Arch:``
gives ``lr_mult_list``. A PaddleOCR config for them, or a PaddleClas one for a PaddleOCR
network, is refused.
"""

from __future__ import annotations

import ast
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ptocr.errors import PtocrError

__all__ = ["TrainingRecipe", "create_optimizer", "param_groups", "paddle_lr_schedule",
           "paddleclas_lr_schedule", "COMPONENT_RULES", "PaddleRMSProp"]

# ---------------------------------------------------------------------------------------------
# Per-architecture parameter attributes (facts from PaddleOCR's ppocr/modeling/...).
# A rule is (regex on the name inside the component, lr, decay), first full match wins; no
# match: lr 1, the optimizer's decay. lr: a number, "stage" (lr_mult_list[stage]) or "lab"
# (lr_mult_list[stage] * lab_lr). decay: None (the optimizer's), a number (the parameter's own
# L2Decay, which replaces it), or "fc_decay" (CTCHead's setting).
# ---------------------------------------------------------------------------------------------
_BN = r"(weight|bias)"
COMPONENT_RULES: dict[str, list[tuple[str, object, object]]] = {
    # det_mobilenet_v3.py / rec_mobilenet_v3.py: ParamAttr(name=...) only.
    "MobileNetV3": [],
    # det_resnet_vd.py: plain Conv2D / BatchNorm (no DCN in ResNet18/34/50).
    "ResNet_vd": [],
    # rec_svtrv2.py, rec_repvit.py: weight initializers only, no learning rate or decay attributes.
    "SVTRv2": [],
    "RepSVTR": [],
    "ResNet_vd_rec": [],
    # rec_mv1_enhance.py ConvBNLayer: BatchNorm ParamAttr(regularizer=L2Decay(0.0)).
    "MobileNetV1Enhance": [(rf".*\._batch_norm\.{_BN}", 1.0, 0.0)],
    # PaddleClas pp_lcnet.py (the orientation classifiers are trained there): ConvBNLayer conv
    # lr_mult, its bn L2Decay(0.0) + lr_mult, SEModule lr_mult, all at lr_mult_list[stage];
    # last_conv and the classifier fc are plain.
    "PPLCNet": [
        (rf"(conv1|blocks\d\.\d+\.(dw_conv|pw_conv))\.bn\.{_BN}", "stage", 0.0),
        (r"(conv1|blocks\d)\..*", "stage", None),
    ],
    # rec_lcnetv3.py: ConvBNLayer conv lr_mult, its bn L2Decay(0.0) + lr_mult; the rep layer's
    # identity BatchNorm2D lr_mult only; LearnableAffineBlock lr_mult * lab_lr; SELayer lr_mult;
    # rep()'s reparam_conv and the det layer_list are plain Conv2D.
    "PPLCNetV3": [
        (r"(conv1|blocks\d\.\d+\.\w+\.conv_(kxk\.\d+|1x1))\.bn\." + _BN, "stage", 0.0),
        (r".*\.lab\.(scale|bias)", "lab", None),
        (r".*\.reparam_conv\.(weight|bias)", 1.0, None),
        (r"(conv1|blocks\d)\..*", "stage", None),
    ],
    # rec_hgnet.py ConvBNAct: BatchNorm2D L2Decay(0.0); ESE conv default.
    "PPHGNet": [(rf".*\.bn\.{_BN}", 1.0, 0.0)],
    # rec_pphgnetv2.py ConvBNAct: conv lr_mult, bn L2Decay(0.0) + lr_mult; LAB lr_mult * lab_lr.
    "PPHGNetV2": [
        (rf"(stem|stages\.\d+)\..*\.bn\.{_BN}", "stage", 0.0),
        (r"(stem|stages\.\d+)\..*\.lab\.(scale|bias)", "lab", None),
        (r"(stem|stages\.\d+)\..*", "stage", None),
    ],
    # rec_lcnetv4.py: only the "branch" stem's ConvBNAct (conv lr_mult, bn L2Decay(0.0) + lr_mult)
    # and SELayer (lr_mult) carry attributes; Conv2D_BN, RepDWConv, the "simple" stem and rep()'s
    # convs are plain. The detector builds them at lr_mult 1 (it never reads lr_mult_list),
    # the recognizer at lr_mult_list[stage].
    "PPLCNetV4": [
        (rf"stem\.stem\w+\.bn\.{_BN}", 1.0, 0.0),                        # det
        (rf"conv1\.stem\w+\.bn\.{_BN}", "stage", 0.0),                   # rec
        (r"conv1\.stem\w+\.conv\.weight", "stage", None),
        (r"blocks\d\.\d+\.token_mixer\.se\.conv[12]\.(weight|bias)", "stage", None),
    ],
    # db_fpn.py: ParamAttr(initializer=...) only, also in RepLKFPN / RepLKPAN's
    # DilatedReparamBlock / DilatedReparamConv; RSELayer, SEModule and IntraCLBlock plain.
    "DBFPN": [], "RSEFPN": [], "LKPAN": [], "RepLKFPN": [], "RepLKPAN": [],
    # rnn.py: LSTM and SVTR encoders default; EncoderWithFC get_para_bias_attr(l2_decay=1e-5).
    "SequenceEncoder": [(r"encoder\.fc\.(weight|bias)", 1.0, 0.00001)],
    # rnn.py EncoderWithLightSVTR: taken as plain like EncoderWithSVTR, whose ConvBNLayer /
    # Block / LayerNorm set initializers only (the v6 source itself was not at hand).
    "LightSVTRSequenceEncoder": [],
    # rec_ctc_head.py get_para_bias_attr(l2_decay=fc_decay) on fc / fc1 / fc2.
    "CTCHead": [(r"fc\d?\.(weight|bias)", 1.0, "fc_decay")],
    # CTCHead with use_guide + mid_channels: fc1 and fc2 (our fc) at fc_decay as in the
    # mid_channels CTCHead; the guide layer's convs and batch norms taken as plain (the v6
    # rec_ctc_head.py itself was not at hand).
    "CTCGuideHead": [(r"fc1?\.(weight|bias)", 1.0, "fc_decay")],
    # det_db_head.py: DBHead / PFHeadLocal ParamAttr(initializer=...) only; cls_head.py ClsHead.
    "DBHead": [], "PFHeadLocal": [], "ClsHead": [],
}

# Rules taken by analogy (PaddleOCR's source of these v6 parts was not at hand): a warning says so.
_INFERRED_RULES = {"LightSVTRSequenceEncoder", "CTCGuideHead"}

# The defaults of Paddle's constructors for the settings the rules read.
_LCNET_STAGES = {"conv1": 0, "blocks2": 1, "blocks3": 2, "blocks4": 3, "blocks5": 4, "blocks6": 5}
_STAGE_PREFIX = {"PPLCNet": _LCNET_STAGES, "PPLCNetV3": _LCNET_STAGES, "PPLCNetV4": _LCNET_STAGES,
                 "PPHGNetV2": {"stem": 0, "stages.0": 1, "stages.1": 2, "stages.2": 3,
                               "stages.3": 4}}
_DEFAULT_LR_MULTS = {"PPLCNet": [1.0] * 6, "PPLCNetV3": [1.0] * 6, "PPLCNetV4": [1.0] * 6,
                     "PPHGNetV2": [1.0] * 5}
_DEFAULT_LAB_LR = {"PPLCNetV3": 0.1, "PPHGNetV2": 0.01}
_DEFAULT_FC_DECAY = 0.0004


@dataclass(frozen=True)
class _ParamAttr:
    lr_scale: float
    own_l2: float | None   # the parameter's own L2Decay coefficient, None: the optimizer's


def _component_settings(architecture: dict | None, suite: str = "PaddleOCR") -> dict:
    """lr_mult_list / lab_lr / fc_decay from a PaddleOCR ``Architecture:`` section, or
    lr_mult_list from a PaddleClas ``Arch:`` section (flat; the list may be a string, which
    PaddleClas evaluates)."""
    architecture = architecture or {}
    if suite == "PaddleClas":
        mults = architecture.get("lr_mult_list")
        if isinstance(mults, str):
            mults = ast.literal_eval(mults)
        return {} if mults is None else {"lr_mult_list": mults}
    backbone = architecture.get("Backbone") or {}
    settings = {k: backbone[k] for k in ("lr_mult_list", "lab_lr") if k in backbone}
    head = architecture.get("Head") or {}
    if head.get("name") == "CTCHead" and "fc_decay" in head:
        settings["fc_decay"] = head["fc_decay"]
    for entry in head.get("head_list") or []:  # MultiHead: {"CTCHead": {"Neck":..., "Head":...}}
        ctc = (entry or {}).get("CTCHead")
        if ctc and "fc_decay" in (ctc.get("Head") or {}):
            settings["fc_decay"] = ctc["Head"]["fc_decay"]
    return settings


def _stage_of(component: str, local_name: str) -> int:
    for prefix, stage in _STAGE_PREFIX[component].items():
        if local_name == prefix or local_name.startswith(prefix + "."):
            return stage
    raise PtocrError(f"{component}: no lr_mult_list stage for parameter {local_name!r}")


def _resolve_attr(component: str, local_name: str, lr, decay, settings: dict) -> _ParamAttr:
    if lr in ("stage", "lab"):
        mults = settings.get("lr_mult_list", _DEFAULT_LR_MULTS[component])
        if len(mults) != len(_DEFAULT_LR_MULTS[component]):
            raise PtocrError(f"{component}: lr_mult_list needs {len(_DEFAULT_LR_MULTS[component])}"
                             f" values, got {list(mults)}")
        lr_scale = float(mults[_stage_of(component, local_name)])
        if lr == "lab":
            lr_scale *= float(settings.get("lab_lr", _DEFAULT_LAB_LR[component]))
    else:
        lr_scale = float(lr)
    if decay == "fc_decay":
        decay = settings.get("fc_decay", _DEFAULT_FC_DECAY)
    return _ParamAttr(lr_scale, None if decay is None else float(decay))


def _component_attr(component: str, local_name: str, settings: dict) -> _ParamAttr:
    for pattern, lr, decay in COMPONENT_RULES[component]:
        if re.fullmatch(pattern, local_name):
            return _resolve_attr(component, local_name, lr, decay, settings)
    return _ParamAttr(1.0, None)


# Components whose networks PaddleClas trains (its own Optimizer dialect), not PaddleOCR.
_PADDLECLAS_COMPONENTS = {"PPLCNet"}
# The architecture section each suite's whole config carries.
_ARCH_SECTION = {"PaddleOCR": "Architecture", "PaddleClas": "Arch"}


def _suite(components: dict[str, str]) -> str:
    return "PaddleClas" if _PADDLECLAS_COMPONENTS & set(components.values()) else "PaddleOCR"


def _components(net: torch.nn.Module) -> dict[str, str]:
    """``{"backbone": class name, ...}`` from ``net.config`` (what ``create_model`` sets)."""
    model = (getattr(net, "config", None) or {}).get("model")
    if not isinstance(model, dict):
        raise PtocrError("the network has no ptocr config (net.config['model']): build it with "
                         "ptocr.create_model")
    names = {part: spec["name"] for part, spec in model.items() if spec}
    unknown = sorted({n for n in names.values() if n not in COMPONENT_RULES})
    if unknown:
        raise PtocrError(f"no PaddleOCR parameter-attribute rules for {', '.join(unknown)} "
                         f"(architecture {net.config.get('architecture')!r}); supported "
                         f"components: {', '.join(sorted(COMPONENT_RULES))}")
    return names


# ptocr.training.MultiHeadTraining: the recognizer under "net.", MultiHead's GTC branch under
# "branch.": lr 1 and the optimizer's L2, as rec_multi_head.py / rec_nrtr_head.py build their
# layers without ParamAttr (rec_sar_head.py too: it imports ParamAttr but gives no layer one).
_WRAPPED_NET_PREFIX, _GTC_BRANCH_PREFIX = "net.", "branch."


def parameter_attributes(net: torch.nn.Module, architecture: dict | None = None
                         ) -> dict[str, _ParamAttr]:
    """``{parameter name: (lr_scale, own_l2)}`` for every trainable parameter of ``net``."""
    net = getattr(net, "module", net)  # DataParallel / DDP
    components = _components(net)
    guessed = sorted(set(components.values()) & _INFERRED_RULES)
    if guessed:
        warnings.warn(f"the parameter attributes of {', '.join(guessed)} follow PaddleOCR's earlier CTCHead / "
                      "SVTR encoder: PaddleOCR's own PP-OCRv6 source for them was not checked", UserWarning,
                      stacklevel=3)
    settings = _component_settings(architecture, _suite(components))
    attrs = {}
    for name, param in net.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith(_GTC_BRANCH_PREFIX):  # MultiHeadTraining's: Paddle's default ParamAttr there
            attrs[name] = _ParamAttr(1.0, None)
            continue
        part, _, local = name.removeprefix(_WRAPPED_NET_PREFIX).partition(".")
        if part not in components:
            raise PtocrError(f"parameter {name!r} is outside backbone/neck/head")
        attrs[name] = _component_attr(components[part], local, settings)
    return attrs


# ---------------------------------------------------------------------------------------------
# Optimizer section.
# ---------------------------------------------------------------------------------------------
_COMMON_KEYS = {"name", "lr", "regularizer", "weight_decay", "clip_norm", "clip_norm_global"}
_OPTIMIZER_KEYS = {  # the keyword arguments of PaddleOCR's wrappers that we honour
    "Adam": {"beta1", "beta2", "epsilon", "lazy_mode", "name"},
    "AdamW": {"beta1", "beta2", "epsilon", "lazy_mode", "multi_precision",
              "no_weight_decay_name", "one_dim_param_no_weight_decay"},
    "Momentum": {"momentum"},
    "RMSProp": {"momentum", "rho", "epsilon"},
}


def _load_config(config) -> tuple[dict, dict | None, str | None]:
    """(Optimizer section, architecture section or None, the suite a whole config is written
    for or None) from a path, a whole config or a bare Optimizer section."""
    if isinstance(config, (str, Path)):
        from ptocr.training.config import load_config

        config = load_config(config)
    if not isinstance(config, dict):
        raise PtocrError(f"config must be a dict or a .yml path, not {type(config).__name__}")
    if "Optimizer" in config:
        for suite, key in _ARCH_SECTION.items():
            if key in config:
                return dict(config["Optimizer"]), config[key], suite
        return dict(config["Optimizer"]), None, None
    return dict(config), None, None


def _network_suite(net, config_suite: str | None) -> str:
    """The suite that trains ``net``; a whole config written for the other one is refused."""
    suite = _suite(_components(net))
    if config_suite not in (None, suite):
        raise PtocrError(f"{net.config.get('architecture')!r} is trained with {suite}, but this is a "
                         f"{config_suite} config (its {_ARCH_SECTION[config_suite]}: section); "
                         f"give {suite}'s Optimizer section")
    return suite


# PaddleClas (ppcls/optimizer/): only its Momentum, what the PP-LCNet classifiers' configs use.
_PADDLECLAS_COMMON_KEYS = {"name", "lr", "regularizer", "weight_decay", "clip_norm"}
_PADDLECLAS_OPTIMIZER_KEYS = {
    "Momentum": {"momentum", "use_nesterov", "multi_precision", "no_weight_decay_name",
                 "one_dim_param_no_weight_decay"},
}
# Per suite: the regularizer names accepted and the key of their coefficient. PaddleOCR maps
# L2 / L2Decay to L2Decay(factor); PaddleClas calls getattr(paddle.regularizer, name + "Decay")
# with the other keys, so only L2 with L2Decay's own keyword, coeff.
_REGULARIZERS = {"PaddleOCR": (("L2", "L2Decay"), "factor"), "PaddleClas": (("L2",), "coeff")}


def _regularizer_coeff(section: dict, suite: str = "PaddleOCR") -> float | None:
    reg = section.get("regularizer")
    if reg is not None:
        names, key = _REGULARIZERS[suite]
        name = reg.get("name")
        if name not in names:
            raise PtocrError(f"{suite} regularizer {name!r} is not supported (only {' / '.join(names)})")
        extra = set(reg) - {"name", key}
        if extra:
            raise PtocrError(f"unknown {suite} regularizer keys {sorted(extra)} (L2 takes {key})")
        return float(reg.get(key, 0.0))
    if section.get("weight_decay") is not None:
        return float(section["weight_decay"])
    return None


def _check_optimizer_keys(section: dict, suite: str = "PaddleOCR") -> str:
    optimizers, common = ((_PADDLECLAS_OPTIMIZER_KEYS, _PADDLECLAS_COMMON_KEYS) if suite == "PaddleClas"
                          else (_OPTIMIZER_KEYS, _COMMON_KEYS))
    name = section.get("name")
    if name not in optimizers:
        hint = " (PaddleOCR has no SGD wrapper; use Momentum)" if name == "SGD" and suite == "PaddleOCR" else ""
        raise PtocrError(f"{suite} optimizer {name!r} is not supported{hint}; supported: "
                         f"{', '.join(optimizers)}")
    unknown = set(section) - common - optimizers[name]
    if unknown:
        raise PtocrError(f"{name}: unknown {suite} Optimizer keys {sorted(unknown)}")
    if suite == "PaddleClas" and section.get("regularizer") and section.get("weight_decay") is not None:
        raise PtocrError("give regularizer or weight_decay, not both (PaddleClas ignores weight_decay)")
    if "clip_norm" in section and "clip_norm_global" in section:
        raise PtocrError("give clip_norm or clip_norm_global, not both")
    if section.get("lazy_mode"):
        raise PtocrError(f"{name}: lazy_mode (sparse updates) is not supported")
    return name


def _no_decay_names(net, section: dict, suite: str) -> set[str]:
    """``no_weight_decay_name`` substrings and ``one_dim_param_no_weight_decay`` (PaddleOCR's
    AdamW, PaddleClas's Momentum)."""
    substrings = (section.get("no_weight_decay_name") or "").split()
    # PaddleClas matches the classifier's own names: ours less the "backbone." / "head." part.
    local = {n: n.partition(".")[2] if suite == "PaddleClas" else n for n, _ in net.named_parameters()}
    names = {n for n, ln in local.items() if any(s in ln for s in substrings)}
    # PaddleClas's Momentum reads one_dim_param_no_weight_decay only with no_weight_decay_name set.
    if section.get("one_dim_param_no_weight_decay") and (substrings or suite == "PaddleOCR"):
        names |= {n for n, p in net.named_parameters() if p.dim() == 1}
    return names


def param_groups(net: torch.nn.Module, config, architecture: dict | None = None) -> list[dict]:
    """Torch parameter groups for PaddleOCR's ``Optimizer:`` section ``config`` (see module doc).

    Each group has ``params``, ``lr_scale`` (ParamAttr learning_rate), ``weight_decay`` (coupled
    L2 for Adam/Momentum/RMSProp, decoupled for AdamW) and, for AdamW, ``coupled_l2`` (a
    parameter's own L2 added to its gradient). ``lr`` is left to the scheduler.
    """
    section, arch, config_suite = _load_config(config)
    net = getattr(net, "module", net)
    suite = _network_suite(net, config_suite)
    name = _check_optimizer_keys(section, suite)
    architecture = architecture if architecture is not None else arch
    coeff = _regularizer_coeff(section, suite)
    attrs = parameter_attributes(net, architecture)
    no_decay = _no_decay_names(net, section, suite) if name == "AdamW" or suite == "PaddleClas" else set()
    if suite == "PaddleClas" and (section.get("no_weight_decay_name") or "").split():
        attrs = _grouped_attrs(attrs, no_decay)
    params = dict(net.named_parameters())
    groups: dict[tuple, dict] = {}
    for pname, attr in attrs.items():
        key = _group_key(name, coeff, attr, pname in no_decay)
        group = groups.setdefault(key, {"params": [], "param_names": [], **dict(key)})
        group["params"].append(params[pname])
        group["param_names"].append(pname)
    return list(groups.values())


def _grouped_attrs(attrs: dict, no_decay: set) -> dict:
    """PaddleClas's Momentum with ``no_weight_decay_name`` passes paddle two parameter groups,
    and paddle's ``_add_param_group`` then overwrites every parameter's ParamAttr: learning_rate
    1.0 and the group's regularizer. lr_mult_list and the batch norms' L2Decay(0.0) are lost."""
    return {n: _ParamAttr(1.0, 0.0 if n in no_decay else None) for n in attrs}


def _group_key(name: str, coeff: float | None, attr: _ParamAttr, excluded: bool) -> tuple:
    if name == "AdamW":  # decoupled decay; a parameter's own L2 still reaches its gradient
        decay = 0.0 if excluded else (0.01 if coeff is None else coeff)
        return (("lr_scale", attr.lr_scale), ("weight_decay", decay),
                ("coupled_l2", attr.own_l2 or 0.0))
    # A parameter's own L2Decay wins over its group's (Paddle's Momentum fuses it per parameter).
    decay = attr.own_l2 if attr.own_l2 is not None else 0.0 if excluded else (coeff or 0.0)
    return (("lr_scale", attr.lr_scale), ("weight_decay", decay))


# ---------------------------------------------------------------------------------------------
# Learning-rate schedule (paddle.optimizer.lr as ppocr/optimizer/learning_rate.py builds it).
# ---------------------------------------------------------------------------------------------
def _cosine(base: float, t_max: int, eta_min: float = 0.0) -> Callable[[int], float]:
    return lambda step: eta_min + (base - eta_min) * (1 + math.cos(math.pi * step / t_max)) / 2


def _piecewise(boundaries: list, values: list) -> Callable[[int], float]:
    def lr(step):
        for boundary, value in zip(boundaries, values):
            if step < boundary:
                return value
        return values[-1]
    return lr


def _polynomial(base: float, decay_steps: int, end_lr: float, power: float):
    return lambda step: (base - end_lr) * (1 - min(step, decay_steps) / decay_steps) ** power + end_lr


_LR_KEYS = {"Cosine": {"learning_rate"}, "Const": {"learning_rate"},
            "Piecewise": {"decay_epochs", "values"},
            "Linear": {"learning_rate", "end_lr", "power"}}


def _decay_schedule(name: str, cfg: dict, total: int, steps_per_epoch: int):
    """(schedule from its step 0, the LR warmup ends at)."""
    if name == "Cosine":
        return _cosine(cfg["learning_rate"], total), cfg["learning_rate"]
    if name == "Piecewise":
        bounds = [steps_per_epoch * e for e in cfg["decay_epochs"]]
        return _piecewise(bounds, cfg["values"]), cfg["values"][0]
    if name == "Linear":
        return (_polynomial(cfg["learning_rate"], total, cfg.get("end_lr", 0.0),
                            cfg.get("power", 1.0)), cfg["learning_rate"])
    return (lambda step: cfg["learning_rate"]), cfg["learning_rate"]


def paddle_lr_schedule(lr_config: dict, epochs: int, steps_per_epoch: int) -> Callable[[int], float]:
    """Iteration (0-based) -> base LR of PaddleOCR's ``Optimizer.lr`` section."""
    cfg = dict(lr_config)
    name = cfg.pop("name", "Const")
    if name not in _LR_KEYS:
        raise PtocrError(f"lr schedule {name!r} is not supported; supported: {', '.join(_LR_KEYS)}")
    unknown = set(cfg) - _LR_KEYS[name] - {"warmup_epoch", "last_epoch"}
    if unknown:
        raise PtocrError(f"lr {name}: unknown keys {sorted(unknown)}")
    if cfg.get("last_epoch", -1) != -1:
        raise PtocrError("lr last_epoch (a restart point) is not supported: build a fresh schedule")
    missing = _LR_KEYS[name] - set(cfg) - {"end_lr", "power"}
    if missing:
        raise PtocrError(f"lr {name}: missing {sorted(missing)}")
    decay, warmup_end = _decay_schedule(name, cfg, epochs * steps_per_epoch, steps_per_epoch)
    warmup = round(cfg.get("warmup_epoch", 0) * steps_per_epoch)
    if warmup <= 0:
        return decay
    return _linear_warmup(decay, warmup, 0.0, warmup_end)


def _linear_warmup(decay, warmup: int, start: float, end: float) -> Callable[[int], float]:
    """paddle's LinearWarmup: start -> end over ``warmup`` steps, then ``decay`` from its step 0."""
    return lambda step: start + (end - start) * step / warmup if step < warmup else decay(step - warmup)


_PADDLECLAS_COSINE_KEYS = {"learning_rate", "eta_min", "warmup_epoch", "warmup_start_lr",
                           "last_epoch", "by_epoch"}


def paddleclas_lr_schedule(lr_config: dict, epochs: int, steps_per_epoch: int) -> Callable[[int], float]:
    """Iteration (0-based) -> base LR of PaddleClas's ``Optimizer.lr`` (ppcls/optimizer/
    learning_rate.py): ``Cosine`` or, without a name, a constant ``learning_rate``. Unlike
    PaddleOCR's, the cosine spans the epochs after the warmup, ends at ``eta_min``, and the warmup
    starts at ``warmup_start_lr``; a ``warmup_epoch`` >= ``epochs`` is cut to ``epochs``."""
    cfg = dict(lr_config)
    name = cfg.pop("name", None)
    if name is None:
        if set(cfg) != {"learning_rate"}:
            raise PtocrError(f"PaddleClas lr without a name takes learning_rate only, got {sorted(cfg)}")
        return lambda step: cfg["learning_rate"]
    if name != "Cosine":
        raise PtocrError(f"PaddleClas lr schedule {name!r} is not supported; supported: Cosine")
    unknown = set(cfg) - _PADDLECLAS_COSINE_KEYS
    if unknown or "learning_rate" not in cfg:
        raise PtocrError(f"PaddleClas lr Cosine: unknown keys {sorted(unknown)} or no learning_rate")
    if cfg.get("by_epoch") or cfg.get("last_epoch", -1) != -1:
        raise PtocrError("PaddleClas lr by_epoch (a per-epoch step) and last_epoch are not supported")
    base, warmup_epoch = cfg["learning_rate"], min(cfg.get("warmup_epoch", 0), epochs)
    t_max = (epochs - warmup_epoch) * steps_per_epoch
    if t_max != int(t_max):  # paddle's CosineAnnealingDecay takes an int T_max only
        raise PtocrError(f"PaddleClas Cosine: T_max (epochs - warmup_epoch) * steps_per_epoch = {t_max} "
                         "is not a whole number")
    decay = _cosine(base, int(t_max), cfg.get("eta_min", 0.0)) if t_max > 0 else (lambda step: base)
    warmup = round(warmup_epoch * steps_per_epoch)
    if warmup <= 0:
        return decay
    return _linear_warmup(decay, warmup, cfg.get("warmup_start_lr", 0.0), base)


# ---------------------------------------------------------------------------------------------
# Optimizers and clipping.
# ---------------------------------------------------------------------------------------------
class PaddleRMSProp(torch.optim.Optimizer):
    """paddle.optimizer.RMSProp (centered=False): ``ms = rho*ms + (1-rho)*g^2``,
    ``mom = momentum*mom + lr*g/sqrt(ms + eps)``, ``p -= mom``. torch's RMSprop differs: its eps
    is outside the sqrt and its LR outside the momentum buffer."""

    def __init__(self, params, lr=1.0, rho=0.95, epsilon=1e-6, momentum=0.0, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, rho=rho, epsilon=epsilon, momentum=momentum,
                                      weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad
                state = self.state[p]
                if not state:
                    state["mean_square"] = torch.zeros_like(p)
                    state["moment"] = torch.zeros_like(p)
                ms, mom = state["mean_square"], state["moment"]
                ms.mul_(group["rho"]).addcmul_(grad, grad, value=1 - group["rho"])
                mom.mul_(group["momentum"]).add_(grad / (ms + group["epsilon"]).sqrt(),
                                                 alpha=group["lr"])
                p.sub_(mom)
        return loss


def _build_torch_optimizer(name: str, section: dict, groups: list[dict]) -> torch.optim.Optimizer:
    if name in ("Adam", "AdamW"):
        cls = torch.optim.AdamW if name == "AdamW" else torch.optim.Adam
        opt = cls(groups, lr=1.0, betas=(section.get("beta1", 0.9), section.get("beta2", 0.999)),
                  eps=section.get("epsilon", 1e-8))
        if name == "AdamW" and any(g["coupled_l2"] for g in groups):
            opt.register_step_pre_hook(_add_coupled_l2)
        return opt
    if name == "Momentum":
        if "momentum" not in section:
            raise PtocrError("Momentum: the momentum key is required")
        return torch.optim.SGD(groups, lr=1.0, momentum=section["momentum"],
                               nesterov=bool(section.get("use_nesterov", False)))
    return PaddleRMSProp(groups, rho=section.get("rho", 0.95), epsilon=section.get("epsilon", 1e-6),
                         momentum=section.get("momentum", 0.0))


def _add_coupled_l2(optimizer, args, kwargs):
    """AdamW: a parameter's own L2Decay is added to its gradient before the update."""
    with torch.no_grad():
        for group in optimizer.param_groups:
            if group.get("coupled_l2"):
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.add_(p, alpha=group["coupled_l2"])


def _clip_by_norm(params: list, clip: float) -> None:
    for p in params:
        if p.grad is not None:
            norm = p.grad.detach().float().norm()
            p.grad.mul_((clip / torch.clamp(norm, min=clip)).to(p.grad.dtype))


def _clip_by_global_norm(params: list, clip: float) -> None:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    norm = torch.stack([g.detach().float().norm() for g in grads]).norm()
    scale = clip / torch.clamp(norm, min=clip)
    for g in grads:
        g.mul_(scale.to(g.dtype))


def _clipper(section: dict, params: list) -> Callable[[], None]:
    if "clip_norm" in section:
        return lambda: _clip_by_norm(params, float(section["clip_norm"]))
    if "clip_norm_global" in section:
        return lambda: _clip_by_global_norm(params, float(section["clip_norm_global"]))
    return lambda: None


@dataclass
class TrainingRecipe:
    """What :func:`create_optimizer` returns. ``step()`` = clip, update, advance the LR."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    clip_grad: Callable[[], None]
    lr_at: Callable[[int], float]

    def step(self) -> None:
        self.clip_grad()
        self.optimizer.step()
        self.scheduler.step()


def create_optimizer(net: torch.nn.Module, config, epochs: int, steps_per_epoch: int,
                     architecture: dict | None = None) -> TrainingRecipe:
    """PaddleOCR's ``build_optimizer`` for a ptocr network (see the module docstring)."""
    if epochs < 1 or steps_per_epoch < 1:
        raise PtocrError(f"epochs and steps_per_epoch must be >= 1, got {epochs}, {steps_per_epoch}")
    section, arch, config_suite = _load_config(config)
    suite = _network_suite(getattr(net, "module", net), config_suite)
    name = _check_optimizer_keys(section, suite)
    if "lr" not in section:
        raise PtocrError("the Optimizer section has no lr")
    schedule = paddleclas_lr_schedule if suite == "PaddleClas" else paddle_lr_schedule
    lr_at = schedule(section["lr"], epochs, steps_per_epoch)
    groups = param_groups(net, section, architecture if architecture is not None else arch)
    for group in groups:
        group["lr"] = group["lr_scale"]  # LambdaLR: lr = lr_scale * schedule(step)
    optimizer = _build_torch_optimizer(name, section, groups)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    params = [p for g in groups for p in g["params"]]
    return TrainingRecipe(optimizer, scheduler, _clipper(section, params), lr_at)
