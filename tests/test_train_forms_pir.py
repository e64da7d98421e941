"""Training checkpoints of the Paddle 3 (PIR) models convert to the network their program runs.

The PIR releases (PaddleX / PaddleOCR 3) carry no structured names; conversion places their
tensors by graph alignment. Their training checkpoints (PaddleX's ``<model>_pretrained.pdparams``,
``best_accuracy.pdparams``) are pickles of ``{structured name: ndarray}`` with the names the
original training code gives, converted through the mapping tables. For every PIR model of the
parity suite, a checkpoint is derived here from the PIR conversion: each tensor of our state
dict is named as the ORIGINAL training code names it (``original_names`` below: a translation
written from the original sources, not an inversion of ``converter/tables``), the training-only
tensors those sources also save are added, and the file must convert, architecture detected,
to exactly the PIR conversion's state dict.

Sources the translation is written from:

* PP-LCNet (textline / doc orientation): PaddleX trains them with PaddleClas
  (``paddlex/repo_apis/PaddleClas_api/configs/PP-LCNet_x0_25_textline_ori.yaml``: ``Arch: name:
  PPLCNet_x0_25, class_num: 2, stride_list: [2, [2, 1], [2, 1], [2, 1], [2, 1]]``;
  ``PP-LCNet_x1_0_textline_ori.yaml`` the same at x1_0; ``PP-LCNet_x1_0_doc_ori.yaml``
  ``class_num: 4``). PaddleClas builds the network itself as the model
  (``ppcls/arch/backbone/legendary_models/pp_lcnet.py``, ``PPLCNetBaseNet``): top-level
  ``conv1`` (ConvBNLayer: ``conv``, ``bn``), ``blocks2`` .. ``blocks6`` (Sequential of
  DepthwiseSeparable: ``dw_conv``, ``se`` (``conv1``, ``conv2``), ``pw_conv``), ``last_conv``
  (1x1 Conv2D, ``bias_attr=False``) and ``fc`` (Linear) -- no ``backbone.`` / ``head.``.
  PaddleClas distillation (``ppcls/configs/PULC/textline_orientation/PPLCNet_x1_0_distillation.yaml``:
  ``DistillationModel`` with ``Teacher`` ResNet101_vd and ``Student`` PPLCNet_x1_0) prefixes
  each sub-model with its key.
* PaddleOCR det/rec (``ppocr/modeling/architectures/base_model.py``): ``backbone.``, ``neck.``,
  ``head.``. Rec ``MultiHead`` (``ppocr/modeling/heads/rec_multi_head.py``): the CTC branch is
  ``head.ctc_encoder`` (SequenceEncoder, whose SVTR encoder is ``.encoder``) and
  ``head.ctc_head`` (CTCHead ``fc``); the NRTR branch ``head.before_gtc`` (Sequential(Flatten,
  FCTranspose) -> ``head.before_gtc.1.fc.weight``) and ``head.gtc_head`` (Transformer) exist in
  training only. PP-OCRv5 configs (``configs/det/PP-OCRv5/*.yml``, ``configs/rec/PP-OCRv5/*.yml``)
  are plain models (no Student/Teacher distillation), so no distillation variant for them.
* PPLCNetV3 (PP-OCRv5 mobile, ``ppocr/modeling/backbones/rec_lcnetv3.py``): a rep layer after
  ``rep()`` holds ``reparam_conv`` (weight, bias), its affine block ``lab`` (scale, bias) and
  its activation's ``act.lab`` (scale, bias).
* PPHGNetV2_B4 (PP-OCRv5 server, ``ppocr/modeling/backbones/rec_pphgnetv2.py``): ``stem.stem1``
  .. ``stem.stem4``, ``stages.i.downsample``, ``stages.i.blocks.j.layers.k`` / ``.conv1`` /
  ``.conv2``, ``aggregation_squeeze_conv``, ``aggregation_excitation_conv`` (all ConvBNAct:
  ``conv``, ``bn``), and, with the default ``use_last_conv=True``, a classification tail
  ``last_conv`` (2048 -> class_expand 2048, no bias) always and ``fc`` (2048 -> 1000) when
  not ``det``, which the OCR forward never reaches.
* LKPAN / PFHeadLocal (v5 server det): the names are those of ch_PP-OCRv4_server_det, whose
  Paddle 2 release lists them in its ``.pdiparams.info`` (checked below).
* UVDoc (``paddlex/inference/models/image_unwarping/modeling/uvdoc.py``, paddlex 3.7.2):
  ``UVDocNet`` holds ``backbone`` (``resnet.resnet_head.i``, ``resnet.resnet_down.s.layers.b``
  with ``conv_down`` / ``conv_start`` / ``conv_final``, ``bridge.bridge.i.blocks.j``, each a
  UVDocConvLayer: ``convolution``, ``normalization``) and ``head`` (``bridge_connector``,
  ``out_point_positions2D.conv_down`` with its PReLU ``activation``, ``out_point_positions2D.conv_up``);
  Paddle's PReLU keeps its slope as ``_weight`` (the file's own key rules rename exactly that one).

* ResNet50_vd + LKPAN + DBHead (PP-OCRv3_server_det, ``ppocr/modeling/backbones/det_resnet_vd.py``):
  stem ``conv1_1`` .. ``conv1_3`` and bottleneck blocks ``bb_{stage}_{i}`` (``conv0`` .. ``conv2``,
  ``short`` on each stage's first), each a ConvBNLayer: ``_conv``, ``_batch_norm``; its config
  sets no IntraCL (no ``incl*``) and ``kernel_list: [7, 2, 2]`` (``det_db_head.py``).
* SVTRv2 (ch_SVTRv2_rec, ``ppocr/modeling/backbones/rec_svtrv2.py``): the two-conv patch
  embedding ``pope.patch_embed``, ``stages.i.blocks.j`` (``mixer``, ``norm1``, ``mlp.fc1``/``fc2``,
  ``norm2``), ``stages.i.downsample``.
* RepSVTR (ch_RepSVTR_rec, ``ppocr/modeling/backbones/rec_repvit.py``): ``features.i`` of
  Conv2d_BN (``c``, ``bn``) and RepViT blocks (``token_mixer``, ``channel_mixer.m``), unfused as
  PaddleOCR's exporter leaves them (``rep()`` is called for PPLCNetV3 only).

Paddle layouts: batch-norm statistics are ``_mean`` / ``_variance`` (no
``num_batches_tracked``), Linear weights are [in, out].
"""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch.nn as nn

from conftest import assert_same_state
from converter.convert import convert
from converter.readers import read_info
from ptocr.manifest import load_manifest
from verification.seeding_pir import seed_folder
from verification.suite import CHECKPOINT, EXPORTED, SEEDED, source_folder, suite

_MODELS = load_manifest().models
PIR = [e for e in suite() if e.kind != CHECKPOINT
       and ((_MODELS.get(e.model) or {}).get("source") or {}).get("format") == "paddle3_pir"]

# PP-LCNet_x1_0 textline and doc differ only in strides (no tensor shows them) and class count:
# detection tells them apart because a classifier architecture that names its labels is not
# re-sized to another class count (converter.convert._set_class_count).


# --- the original names -----------------------------------------------------------------

_BN_STATS = ((re.compile(r"\.running_mean$"), "._mean"), (re.compile(r"\.running_var$"), "._variance"))


def _paddle_bn(name: str) -> str:
    for pattern, paddle_name in _BN_STATS:
        name = pattern.sub(paddle_name, name)
    return name


def _paddleclas_pplcnet(key: str) -> str:
    """Ours -> PaddleClas ``PPLCNetBaseNet`` (the network is the model: no prefixes)."""
    if key.startswith("head.fc."):
        return "fc." + key[len("head.fc."):]
    assert key.startswith("backbone."), key
    return key[len("backbone."):]


# PaddleOCR 3's fused LearnableRepLayer: our ``w``/``b`` are its ``lab.scale``/``lab.bias``, our
# ``activation.scale``/``.bias`` its ``act.lab.scale``/``.bias`` (rec_lcnetv3.py, after rep()).
_REP_AFFINE = (
    (re.compile(r"\.(dw_conv|pw_conv)\.w$"), r".\1.lab.scale"),
    (re.compile(r"\.(dw_conv|pw_conv)\.b$"), r".\1.lab.bias"),
    (re.compile(r"\.(dw_conv|pw_conv)\.activation\.(scale|bias)$"), r".\1.act.lab.\2"),
)


def _paddleocr(key: str, backbone: str, multihead: bool) -> str:
    """Ours -> PaddleOCR's BaseModel names (MultiHead for recognizers)."""
    if multihead:
        if key.startswith("neck."):
            key = "head.ctc_encoder." + key[len("neck."):]
        elif key.startswith("head."):
            key = "head.ctc_head." + key[len("head."):]
    if backbone == "PPLCNetV3":
        for pattern, original in _REP_AFFINE:
            key = pattern.sub(original, key)
    return key


def _paddlex_uvdoc(key: str) -> str:
    """Ours -> PaddleX's UVDocNet: the same module names; Paddle's PReLU calls its slope ``_weight``."""
    return re.sub(r"\.activation\.weight$", ".activation._weight", key)


def original_names(conversion) -> dict[str, np.ndarray]:
    """The conversion's state dict as the original training code would save it."""
    model_cfg = conversion.config["model"]
    backbone = model_cfg["backbone"]["name"]
    multihead = conversion.arch["task"] == "rec"
    linear = {f"{n}.weight" for n, m in conversion.model.named_modules() if isinstance(m, nn.Linear)}
    out = {}
    for key, tensor in conversion.state_dict.items():
        if key.endswith(".num_batches_tracked"):
            continue  # Paddle's BatchNorm has no such tensor
        array = tensor.numpy()
        if key in linear:
            array = np.ascontiguousarray(array.T)  # Paddle Linear: [in, out]
        if backbone == "PPLCNet":
            name = _paddleclas_pplcnet(key)
        elif backbone == "UVDocBackbone":
            name = _paddlex_uvdoc(key)
        else:
            name = _paddleocr(key, backbone, multihead)
        name = _paddle_bn(name)
        assert name not in out, name
        out[name] = array
    return out


def training_only(conversion, rng) -> dict[str, np.ndarray]:
    """Tensors the original training code saves beside the inference network's."""
    f = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    model_cfg = conversion.config["model"]
    extra = {}
    if model_cfg["backbone"]["name"] == "PPHGNetV2":
        # rec_pphgnetv2.py, use_last_conv=True (default): last_conv always, fc unless det.
        extra["backbone.last_conv.weight"] = f(2048, 2048, 1, 1)
        if not model_cfg["backbone"].get("det"):
            extra["backbone.fc.weight"] = f(2048, 1000)
            extra["backbone.fc.bias"] = f(1000)
    if conversion.arch["task"] == "rec":
        # rec_multi_head.py: NRTR branch (nrtr_dim 384 in the v5 configs); names as
        # ch_PP-OCRv4_server_rec's .pdiparams.info lists them.
        width = conversion.state_dict["neck.encoder.conv1.conv.weight"].shape[1]  # backbone channels
        extra["head.before_gtc.1.fc.weight"] = f(width, 384)
        extra["head.gtc_head.decoder.0.self_attn.qkv.weight"] = f(384, 3 * 384)
        extra["head.gtc_head.decoder.0.self_attn.qkv.bias"] = f(3 * 384)
        extra["head.gtc_head.decoder.0.cross_attn.kv.weight"] = f(384, 2 * 384)
        extra["head.gtc_head.decoder.0.norm1.weight"] = f(384)
    return extra


# --- helpers ----------------------------------------------------------------------------

_REFERENCES: dict[str, object] = {}


def _reference(entry, shared, tmp_path_factory):
    """The PIR folder's conversion (made once per model for this module's tests)."""
    if entry.model not in _REFERENCES:
        src = source_folder(shared, entry)
        if not (src / "inference.json").is_file():
            pytest.skip(f"{src} holds no inference.json")
        # Seeded weights (no calibration: only names and values matter here), in a folder
        # named like the model's own.
        folder = (seed_folder(src, tmp_path_factory.mktemp("pir") / entry.folder)
                  if entry.kind in (SEEDED, EXPORTED) else src)
        _REFERENCES[entry.model] = convert(folder, entry.arch)
    return _REFERENCES[entry.model]


def _write(folder, name, state):
    folder.mkdir(parents=True)
    path = folder / name
    path.write_bytes(pickle.dumps(state, protocol=4))
    return path


def _pinned_facts(entry, state):
    """One real fact per family, from the sources the translation cites."""
    name = entry.model
    if name.startswith("PP-LCNet"):  # pp_lcnet.py; PaddleX yaml class_num
        classes = 4 if "doc_ori" in name else 2
        assert state["last_conv.weight"].shape[0] == 1280 and state["last_conv.weight"].shape[2:] == (1, 1)
        assert "last_conv.bias" not in state  # bias_attr=False
        assert state["fc.weight"].shape == (1280, classes) and state["fc.bias"].shape == (classes,)
        assert "conv1.bn._variance" in state and "blocks6.0.se.conv1.weight" in state
        assert not any(k.startswith(("backbone.", "head.")) for k in state)
    elif name == "UVDoc":  # uvdoc.py with _config.py's defaults
        assert state["backbone.resnet.resnet_head.0.convolution.weight"].shape == (32, 3, 5, 5)
        assert "backbone.resnet.resnet_head.0.convolution.bias" not in state  # the stem: bias=False
        assert "backbone.resnet.resnet_down.1.layers.0.conv_down.convolution.bias" in state  # bias=True
        assert "backbone.resnet.resnet_down.0.layers.0.conv_down.convolution.weight" not in state  # 32 -> 32
        assert state["backbone.bridge.bridge.5.blocks.2.convolution.weight"].shape == (128, 128, 3, 3)
        assert state["head.bridge_connector.convolution.weight"].shape == (128, 768, 1, 1)  # 6 bridges of 128
        assert state["head.out_point_positions2D.conv_down.activation._weight"].shape == (1,)
        assert state["head.out_point_positions2D.conv_up.weight"].shape == (2, 32, 5, 5)
    elif entry.arch.startswith("PP-OCRv5_server"):  # rec_pphgnetv2.py, PPHGNetV2_B4
        assert state["backbone.stem.stem1.conv.weight"].shape == (32, 3, 3, 3)  # stem_channels [3, 32, 48]
        assert state["backbone.stem.stem4.conv.weight"].shape == (48, 32, 1, 1)
        w = state["backbone.stages.3.blocks.0.aggregation_excitation_conv.conv.weight"]
        assert w.shape == (2048, 1024, 1, 1)  # stage4 out 2048, squeeze to out // 2
        assert "backbone.stages.2.blocks.2.layers.5.conv2.conv.weight" in state  # 3 light blocks of 6
    elif entry.arch == "PP-OCRv3_server_det":  # det_resnet_vd.py (50 layers), db_fpn.py, det_db_head.py
        assert state["backbone.conv1_1._conv.weight"].shape == (32, 3, 3, 3)
        assert state["backbone.bb_3_2.conv2._conv.weight"].shape == (2048, 512, 1, 1)  # 4x expansion
        assert "backbone.bb_0_0.short._conv.weight" in state and "backbone.bb_1_1.short._conv.weight" not in state
        assert state["neck.ins_conv.3.weight"].shape == (256, 2048, 1, 1)
        assert not any(k.startswith("neck.incl") for k in state)
        assert state["head.binarize.conv1.weight"].shape == (64, 256, 7, 7)
    elif entry.arch == "ch_SVTRv2_rec":  # rec_svtrv2.py: dims [128, 256, 384], depths [6, 6, 6]
        assert state["backbone.pope.patch_embed.0.conv.weight"].shape == (64, 3, 3, 3)
        assert state["backbone.stages.2.blocks.5.mlp.fc2.weight"].shape == (1536, 384)  # mlp_ratio 4, [in, out]
    elif entry.arch == "ch_RepSVTR_rec":  # rec_repvit.py, unfused
        assert state["backbone.features.0.0.c.weight"].shape == (48, 3, 3, 3)
        assert "backbone.features.13.channel_mixer.m.2.c.weight" in state
    else:  # rec_lcnetv3.py, fused
        assert "backbone.blocks2.0.dw_conv.reparam_conv.weight" in state
        assert "backbone.blocks2.0.dw_conv.lab.scale" in state and "backbone.blocks2.0.pw_conv.act.lab.bias" in state
    if entry.arch.endswith("_rec"):  # rec_multi_head.py
        assert "head.ctc_encoder.encoder.conv1.conv.weight" in state
        assert state["head.ctc_head.fc.weight"].ndim == 2 and "head.ctc_head.fc.bias" in state


# --- tests ------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", PIR, ids=[e.id for e in PIR])
def test_pir_models_training_checkpoints_convert_like_the_pir_model(shared_dir, tmp_path, tmp_path_factory, entry):
    reference = _reference(entry, shared_dir, tmp_path_factory)
    rng = np.random.default_rng(0)
    state = original_names(reference)
    _pinned_facts(entry, state)
    state.update(training_only(reference, rng))

    # Named as PaddleX names its weights, in a folder named after the model (its dictionary).
    path = _write(tmp_path / f"{entry.model}_train", f"{entry.model}_pretrained.pdparams", state)
    detected = convert(path, None)
    assert detected.arch_name == entry.arch
    assert detected.source.format == "paddle_train" and detected.form == reference.form
    assert_same_state(detected.state_dict, reference.state_dict)


@pytest.mark.parametrize("entry", [pytest.param(e, id=e.id) for e in PIR if e.arch.endswith("_det")])
def test_det_training_checkpoint_with_threshold_branch(shared_dir, tmp_path, tmp_path_factory, entry):
    """A DB training checkpoint also holds the threshold branch (``head.thresh``, a second
    ``Head`` beside ``head.binarize`` in det_db_head.py): it converts to the training-head form,
    the rest unchanged."""
    reference = _reference(entry, shared_dir, tmp_path_factory)
    state = original_names(reference)
    rng = np.random.default_rng(1)
    state.update({k.replace("head.binarize.", "head.thresh.", 1): rng.standard_normal(v.shape).astype(v.dtype)
                  for k, v in state.items() if k.startswith("head.binarize.")})
    state.update(training_only(reference, rng))
    path = _write(tmp_path / f"{entry.model}_train", "best_accuracy.pdparams", state)
    conv = convert(path, None)
    assert conv.arch_name == entry.arch and "training head" in (conv.form or "")
    assert_same_state(conv.state_dict, reference.state_dict, keys=reference.state_dict.keys())
    assert any(k.startswith("head.thresh.") for k in conv.state_dict)


def test_paddleclas_distillation_checkpoint_takes_the_student(shared_dir, tmp_path, tmp_path_factory):
    """PaddleClas's DistillationModel saves ``Teacher.`` / ``Student.`` sub-models (PULC
    textline_orientation PPLCNet_x1_0_distillation.yaml: Teacher ResNet101_vd, Student PPLCNet);
    the Student converts. Shown on the model with trained weights, PP-LCNet_x0_25_textline_ori."""
    entry = next((e for e in PIR if e.model == "PP-LCNet_x0_25_textline_ori"), None)
    if entry is None:
        pytest.skip("PP-LCNet_x0_25_textline_ori is not in the suite")
    reference = _reference(entry, shared_dir, tmp_path_factory)
    rng = np.random.default_rng(2)
    student = original_names(reference)
    teacher = {"stem.0.conv.weight": rng.standard_normal((32, 3, 3, 3)).astype(np.float32),
               "fc.weight": rng.standard_normal((2048, 2)).astype(np.float32),
               "fc.bias": np.zeros(2, np.float32)}  # a different network, abbreviated
    state = {**{f"Teacher.{k}": v for k, v in teacher.items()}, **{f"Student.{k}": v for k, v in student.items()}}
    path = _write(tmp_path / "distilled", f"{entry.model}_pretrained.pdparams", state)
    conv = convert(path, None)
    assert conv.arch_name == entry.arch and conv.source.submodel == "Student"
    assert_same_state(conv.state_dict, reference.state_dict)


def test_v5_server_det_neck_and_head_names_are_paddleocrs(shared_dir, tmp_path_factory):
    """LKPAN and PFHeadLocal are the same layers in ch_PP-OCRv4_server_det, whose Paddle 2
    release names them (``.pdiparams.info``): every neck / head name of the v5 server det
    translation is one of them."""
    info = shared_dir / "paddle_graphs" / "ch_PP-OCRv4_server_det_infer" / "inference.pdiparams.info"
    entry = next((e for e in PIR if e.arch == "PP-OCRv5_server_det"), None)
    if entry is None or not info.is_file():
        pytest.skip("PP-OCRv5_server_det or the ch_PP-OCRv4_server_det .info is not available")
    released = set(read_info(info).values())
    state = original_names(_reference(entry, shared_dir, tmp_path_factory))
    ours = {k for k in state if k.startswith(("neck.", "head."))}
    assert ours and ours <= released, sorted(ours - released)[:10]
