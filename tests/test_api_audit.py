"""What a PyTorch user meets through ptocr's public API (``create_model``, ``load``,
``save_model``): a zoo name's settings, saving what ``load`` gives, training modes, casts and
inputs of the wrong shape."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest
import torch

import ptocr
from conftest import converted_folders
from ptocr.architectures import get_architecture
from ptocr.errors import ArchitectureError
from ptocr.manifest import load_manifest
from ptocr.transforms import load_image

ZOO = load_manifest()


def _network_of(entry) -> dict:
    """The architecture's description with the entry's arguments over it (no dictionary rule)."""
    cfg = get_architecture(entry.architecture)["model"]
    for part, args in entry.arguments.items():
        cfg[part].update(args)
    return cfg


@pytest.mark.parametrize("name", ptocr.list_models())
def test_a_zoo_name_without_weights_builds_that_model_s_head(name):
    # Was the architecture's default for every recognizer without arguments.head.num_classes:
    # en_PP-OCRv4_rec had 6625 classes, not the 97 of en_dict.txt + blank + space.
    entry = ZOO.model_entry(name)
    model = ptocr.create_model(name)
    dictionary = entry.builtin_dictionary()
    if entry.task == "rec":  # CTC: blank + the dictionary's characters (+ space)
        with torch.no_grad():
            classes = model(torch.rand(1, 3, 48, 64)).shape[-1]
        assert classes == dictionary.num_classes == model.config["model"]["head"]["num_classes"]
        assert model.dictionary == dictionary
    else:  # detectors, classifiers, unwarping: no dictionary, the head as the architecture has it
        assert dictionary is None and model.dictionary is None
        assert model.config["model"]["head"] == _network_of(entry)["head"]


def test_a_fresh_zoo_recognizer_saves_with_its_dictionary(tmp_path):
    # Was refused: the head did not fit en_dict.txt, and the model had no dictionary to write.
    dst = ptocr.save_model(ptocr.create_model("en_PP-OCRv4_rec"), tmp_path / "en.safetensors")
    again = ptocr.load(dst, optimize=False)
    assert again.dictionary.characters == ZOO.model_entry("en_PP-OCRv4_rec").builtin_dictionary().characters
    assert again.model.head.out_channels == 97


def test_num_classes_overrides_the_zoo_dictionary():
    model = ptocr.create_model("en_PP-OCRv4_rec", num_classes=28)
    assert model.head.out_channels == 28 and model.dictionary is None


@pytest.mark.parametrize("name", ["en_PP-OCRv4_rec", "PP-OCRv5_mobile_det", "PP-OCRv6_tiny_rec"])
def test_a_training_form_file_loaded_fused_saves_and_loads_back(tmp_path, name):
    # Was refused (ModelFileError: missing ...conv_1x1.bn, unexpected ...reparam_conv): load's
    # fuse=True fused the rep layers and save_model wrote the file's training-form config.
    torch.manual_seed(0)
    trained = ptocr.save_model(ptocr.create_model(name), tmp_path / "trained.safetensors")
    fused = ptocr.load(trained, optimize=False)
    again = ptocr.load(ptocr.save_model(fused.model, tmp_path / "again.safetensors"), optimize=False)
    assert again.config["model"]["backbone"]["reparam"] is True
    assert fused.config["model"]["backbone"].get("reparam", False) is False  # the file it came from
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(again.model(x), fused.model(x))


def test_a_training_form_file_unfused_saves_in_training_form(tmp_path):
    trained = ptocr.save_model(ptocr.create_model("en_PP-OCRv4_rec"), tmp_path / "trained.safetensors")
    branches = ptocr.load(trained, fuse=False).model
    again = ptocr.load(ptocr.save_model(branches, tmp_path / "again.safetensors"), fuse=False)
    assert again.config["model"]["backbone"].get("reparam", False) is False
    assert set(again.model.state_dict()) == set(branches.state_dict())


def test_training_an_inference_detector_names_the_call_that_trains_it(shared_dir):
    # Was "build it with with_thresh=True": no user-level way to do that.
    folder = str(shared_dir / "paddle_models" / "ch_PP-OCRv4_det_infer")
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(ArchitectureError) as caught:
        ptocr.load(folder, optimize=False).model.train()(x)
    call = f"ptocr.create_model('ch_PP-OCRv4_det', pretrained={folder!r})"
    assert call in str(caught.value)
    with pytest.warns(UserWarning, match="threshold branch"):
        named = eval(call, {"ptocr": ptocr})
    assert named.train()(x)["maps"].shape == (1, 3, 64, 64)


def test_training_a_detector_loaded_by_zoo_name_names_pretrained_true():
    model = ptocr.create_model("PP-OCRv5_mobile_det")
    model.head.thresh = None  # as the zoo's inference program holds the head
    model.source = "PP-OCRv5_mobile_det"  # as ptocr.load("PP-OCRv5_mobile_det") sets it
    with pytest.raises(ArchitectureError, match=r"ptocr.create_model\('PP-OCRv5_mobile_det', pretrained=True\)"):
        model.train()(torch.rand(1, 3, 64, 64))


def test_training_mode_on_an_optimized_model_warns_once_naming_what_to_train(shared_dir):
    # Was silent: .train() + backward ran on folded batch norms, another network than Paddle's.
    folder = str(shared_dir / "paddle_models" / "ch_ppocr_mobile_v2.0_cls_infer")
    model = ptocr.load(folder).model
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.eval()
        model.train()
        model.train()
        model.train(False)
        ptocr.load(folder, optimize=False).model.train()
    assert len(caught) == 1
    assert f"ptocr.create_model('ch_ppocr_mobile_v2.0_cls', pretrained={folder!r})" in str(caught[0].message)
    assert "optimize=False" in str(caught[0].message)


@pytest.fixture(scope="module")
def v4_det(shared_dir, tmp_path_factory) -> Path:
    """ch_PP-OCRv4_det_infer converted once for the tests that load it."""
    return converted_folders(shared_dir, tmp_path_factory.mktemp("v4_det"), {"det": "ch_PP-OCRv4_det_infer"})["det"]


def _scene_input(predictor, shared_dir) -> torch.Tensor:
    image = load_image(str(sorted((shared_dir / "images" / "scenes").glob("*.jpg"))[0]))
    x, _ = predictor.pre(image)
    return torch.from_numpy(x[None])


def test_a_half_detector_s_map_is_float32_s_to_half_rounding(shared_dir, v4_det):
    # Was all zero: .half() turned the DB head's first running variance (~1e8) into infinity.
    detector = ptocr.load(v4_det, optimize=False)
    x = _scene_input(detector, shared_dir)
    with torch.no_grad():
        wide = detector.model(x)
        half = copy.deepcopy(detector.model).half()(x.half()).float()
    text, text_half = wide > 0.3, half > 0.3  # DBPostProcess's thresh
    assert text.sum() > 1000
    assert (text != text_half).sum() <= text.sum() * 0.002  # 7 of 10203 pixels, as load(dtype="float16")
    assert (half - wide).abs().mean() < 1e-3


def test_narrow_casts_keep_batch_norms_float32_and_others_as_asked():
    model = ptocr.create_model("ch_ppocr_mobile_v2.0_det")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        assert torch.equal(copy.deepcopy(model).to(torch.float32)(x), before)
    half = copy.deepcopy(model).to(torch.float16)
    bn = half.head.binarize.conv_bn1
    assert bn.running_var.dtype == bn.weight.dtype == torch.float32
    assert half.head.binarize.conv1.weight.dtype == torch.float16
    assert copy.deepcopy(model).bfloat16().head.binarize.conv_bn1.running_mean.dtype == torch.float32
    assert copy.deepcopy(model).double().head.binarize.conv_bn1.running_var.dtype == torch.float64
    again = copy.deepcopy(model).half()
    again.load_state_dict(half.state_dict())  # a half model's state dict loads into either type
    model.load_state_dict(half.state_dict())
    assert model.head.binarize.conv1.weight.dtype == torch.float32


@pytest.mark.parametrize("optimize", [True, False])
@pytest.mark.parametrize(("shape", "hint"), [((3, 64, 64), "add the batch dimension"), ((1, 1, 64, 64), r"\[1, 1, 64, 64\]")])
def test_a_wrong_rank_or_channel_count_names_the_input_expected(v4_det, optimize, shape, hint):
    # Were IndexError "Dimension out of range" (3-D, optimized) and a oneDNN "could not create a
    # primitive descriptor" (1 channel, the optimized v4 detector).
    model = ptocr.load(v4_det, optimize=optimize).model
    with pytest.raises(ValueError, match=rf"N x 3 x H x W.*{hint}") as caught:
        with torch.no_grad():
            model(torch.rand(*shape))
    assert isinstance(caught.value, ptocr.errors.PtocrError)


def test_tracing_a_model_gives_no_tracer_warning_from_the_input_check():
    # The check compares sizes; under torch.jit.trace they are tensors (one TracerWarning each).
    model = ptocr.create_model("ch_ppocr_mobile_v2.0_cls")
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, torch.rand(2, 3, 48, 192))
    x = torch.rand(3, 3, 48, 192)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x), rtol=0, atol=0)
