"""``ptocr train`` on PaddleOCR's own config files (tests/fixtures/paddleocr_configs, unchanged),
overriding only what a user overrides: the data, the starting model, the output folder, batch
sizes, workers and the device. Each builds the architecture, loss and datasets it describes, or
is refused naming the key ptocr does not reproduce; a few small ones train an iteration.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from conftest import intra_op_threads

from ptocr.errors import PtocrError
from ptocr.training.multihead import MultiHeadTraining
from ptocr.training.trainer import Trainer

CONFIGS = Path(__file__).parent / "fixtures" / "paddleocr_configs"
# Four word crops read by eye (tests/test_train_cli.py's); ic15_dict (en_number) is lower case.
WORDS = {"en2/word_10.png": "PAIN", "en2/word_19.png": "SLOW", "en2/word_201.png": "HOUSE",
         "en2/word_308.png": "LITTLE"}
SCENE = ("scenes/00009282.jpg", [{"transcription": "a", "points": [[87, 265], [236, 268], [236, 281], [86, 279]]},
                                 {"transcription": "b", "points": [[82, 230], [132, 227], [132, 241], [83, 244]]}])
REC_FINETUNE = "en_number_mobile_v2.0_rec_train_finetune/best_accuracy"
# Config -> (ptocr architecture, Loss class, MultiHead branch or None, shared starting model or None, extra -o).
BUILDS = {
    "ch_PP-OCRv4_rec.yml": ("ch_PP-OCRv4_rec", "MultiLoss", "NRTRHead", "ch_PP-OCRv4_rec_infer", ()),
    "ch_PP-OCRv4_rec_hgnet.yml": ("ch_PP-OCRv4_server_rec", "MultiLoss", "NRTRHead", None,
                                  ("Train.dataset.ext_op_transform_idx=1",)),  # see test_refused
    "en_PP-OCRv4_rec.yml": ("ch_PP-OCRv4_rec", "MultiLoss", "NRTRHead", None, ()),
    "PP-OCRv5_mobile_rec.yml": ("ch_PP-OCRv4_rec", "MultiLoss", "NRTRHead", "PP-OCRv5_mobile_rec_infer", ()),
    "PP-OCRv5_server_rec.yml": ("PP-OCRv5_server_rec", "MultiLoss", "NRTRHead", None, ()),
    "en_PP-OCRv3_rec.yml": ("ch_PP-OCRv3_rec", "MultiLoss", "SARHead", None, ()),
    "rec_chinese_lite_train_v2.0.yml": ("ch_ppocr_mobile_v2.0_rec", "CTCLoss", None, None, ()),
    "rec_en_number_lite_train.yml": ("ch_ppocr_mobile_v2.0_rec", "CTCLoss", None, REC_FINETUNE, ()),
    "PP-OCRv5_mobile_det.yml": ("ch_PP-OCRv4_det", "DBLoss", None, "PP-OCRv5_mobile_det_infer", ()),
    "PP-OCRv5_server_det.yml": ("PP-OCRv5_server_det", "DBLoss", None, None, ()),
    "PP-OCRv4_mobile_det.yml": ("ch_PP-OCRv4_det", "DBLoss", None, "ch_PP-OCRv4_det_infer", ()),
    "PP-OCRv4_server_det.yml": ("ch_PP-OCRv4_server_det", "DBLoss", None, None, ()),
    "ch_PP-OCRv3_det_student.yml": ("ch_PP-OCRv3_det", "DBLoss", None, "ch_PP-OCRv3_det_infer", ()),
    "ch_det_mv3_db_v2.0.yml": ("ch_ppocr_mobile_v2.0_det", "DBLoss", None,
                               "ch_ppocr_mobile_v2.0_det_train/best_accuracy", ()),
    # With its BaseDataAugmentation and RandAugment (tests/test_training_cls_augment.py: PaddleOCR's).
    "cls_mv3.yml": ("ch_ppocr_mobile_v2.0_cls", "ClsLoss", None, "ch_ppocr_mobile_v2.0_cls_infer", ()),
}


@pytest.fixture(autouse=True)
def one_thread():
    with intra_op_threads(1):
        yield


def _task(name: str) -> str:
    return "det" if "_det" in name else "cls" if name.startswith("cls") else "rec"


def _labels(shared_dir: Path, tmp_path: Path, task: str) -> tuple[Path, Path]:
    """(data_dir, label file) of two samples for ``task``."""
    label = tmp_path / f"{task}.txt"
    if task == "det":
        label.write_text(f"{SCENE[0]}\t{json.dumps(SCENE[1])}\n" * 2, encoding="utf-8")
        return shared_dir / "images", label
    words = list(WORDS.items())[:2]
    texts = [t.lower() for _, t in words] if task == "rec" else ["0", "180"]
    label.write_text("".join(f"{p}\t{t}\n" for (p, _), t in zip(words, texts)), encoding="utf-8")
    return shared_dir / "images" / "words", label


def _overrides(name: str, shared_dir: Path, tmp_path: Path, model=None, extra=()) -> list[str]:
    data_dir, label = _labels(shared_dir, tmp_path, _task(name))
    config = yaml.safe_load((CONFIGS / name).read_text(encoding="utf-8"))
    out = ["Global.use_gpu=false", f"Global.save_model_dir={tmp_path / 'out'}",
           f"Global.pretrained_model={shared_dir / 'paddle_models' / model if model else ''}"]
    for section in ("Train", "Eval"):
        out += [f"{section}.dataset.data_dir={data_dir}", f"{section}.dataset.label_file_list=[{label}]",
                f"{section}.loader.batch_size_per_card=2", f"{section}.loader.num_workers=0"]
    if config["Train"].get("sampler"):
        out.append("Train.sampler.first_bs=2")
    return out + list(extra)


def _keep_keys(config: dict, section: str) -> list[str]:
    return next(op["KeepKeys"]["keep_keys"] for op in config[section]["dataset"]["transforms"] if "KeepKeys" in op)


def test_the_fixture_list_is_the_documented_one():
    names = sorted(p.name for p in CONFIGS.glob("*.yml"))
    assert names == sorted([*BUILDS, "ch_PP-OCRv4_det_student.yml"])
    readme = (CONFIGS / "README.md").read_text(encoding="utf-8")
    doc = (Path(__file__).parents[1] / "doc" / "training.md").read_text(encoding="utf-8")
    assert all(n in readme and n in doc for n in names)


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_real_config_builds(name, shared_dir, tmp_path):
    arch, loss, branch, model, extra = BUILDS[name]
    config = yaml.safe_load((CONFIGS / name).read_text(encoding="utf-8"))
    trainer = Trainer.from_config(CONFIGS / name, _overrides(name, shared_dir, tmp_path, model, extra))
    assert trainer.arch.name == arch and type(trainer.criterion).__name__ == loss
    assert trainer.multihead == (branch is not None)
    for section, loader in (("Train", trainer.train_loader), ("Eval", trainer.eval_loader)):
        batch = next(iter(loader))
        assert set(_keep_keys(config, section)) <= set(batch), (section, sorted(batch))
    if branch is not None:  # MultiHead's GTC branch, trained through MultiLoss on the Train batch
        assert next(iter(trainer.arch.gtc_head)) == branch and isinstance(trainer.net, MultiHeadTraining)
        batch = next(iter(trainer.train_loader))
        losses = trainer.criterion(trainer.net(batch["image"], batch), batch)
        assert set(losses) == {"CTCLoss", branch.replace("Head", "Loss"), "loss"} and torch.isfinite(losses["loss"])
    if config["Train"].get("sampler"):  # MultiScaleDataSet: the sampler's heights, no RecResizeImg
        heights = {h for _, h in config["Train"]["sampler"]["scales"]}
        assert next(iter(trainer.train_loader))["image"].shape[2] in heights


def test_global_keys_reach_the_ops_as_in_paddleocr(shared_dir, tmp_path):
    """tools/train.py merges Global into every op's arguments (create_operators): Global's
    max_text_length is RecConAug's, Global.label_list is ClsLabelEncode's."""
    name = "ch_PP-OCRv4_rec.yml"
    extra = ["Global.max_text_length=30"]
    trainer = Trainer.from_config(CONFIGS / name, _overrides(name, shared_dir, tmp_path, extra=extra))
    con_aug = trainer.train_loader.dataset.transforms.transforms[0]
    assert type(con_aug).__name__ == "RecConAug" and con_aug.max_text_length == 30
    name = "cls_mv3.yml"
    extra = [*BUILDS[name][4], "Global.label_list=['0','90','180']"]
    with pytest.raises(PtocrError, match="3 labels for ClsHead class_dim 2"):
        Trainer.from_config(CONFIGS / name, _overrides(name, shared_dir, tmp_path, extra=extra))


def test_fix_nan_zeroes_nans_in_training_only(shared_dir, tmp_path):
    """PP-OCRv5_mobile_det.yml's DBHead fix_nan: PaddleOCR's NaN guard after the head's conv-BN layers."""
    name = "PP-OCRv5_mobile_det.yml"
    trainer = Trainer.from_config(CONFIGS / name, _overrides(name, shared_dir, tmp_path))
    assert trainer.arch.fix_nan
    bn = trainer.net.head.thresh.conv_bn2
    nan = torch.full((1, bn.num_features, 2, 2), float("nan"))
    assert torch.equal(bn.train()(nan), torch.zeros_like(nan))
    assert torch.isnan(bn.eval()(nan)).all()


@pytest.mark.parametrize("name", ["PP-OCRv4_server_det.yml", "PP-OCRv5_server_det.yml"])
def test_pfheadlocal_is_evaluated_on_paddleocrs_maps(name, shared_dir, tmp_path):
    """PaddleOCR's evaluation reads PFHeadLocal's maps, the mean of its two maps, whichever map the
    ptocr architecture returns for inference (the v4 server det's inference program gives the refined one)."""
    trainer = Trainer.from_config(CONFIGS / name, _overrides(name, shared_dir, tmp_path))
    head = trainer.net.head
    inference = head.output
    seen = []
    hook = head.register_forward_hook(lambda module, args, out: seen.append(module.output))
    trainer.evaluate()
    hook.remove()
    assert seen == ["mean"] * len(trainer.eval_loader) and head.output == inference
    assert inference == ("cbn" if "v4" in name else "mean")


# Config -> (extra -o, the refusal). Each names the key a user would change.
REFUSED = {
    "ch_PP-OCRv4_det_student.yml": ((), "Architecture.Backbone.name 'PPLCNetNew' is no det backbone ptocr has"),
    # No ext_op_transform_idx: PaddleOCR's default 2 puts the other samples through RecConAug itself.
    "ch_PP-OCRv4_rec_hgnet.yml": ((), "Train.dataset.ext_op_transform_idx 2 (the default): puts RecConAug's other "
                                      "samples through"),
    "PP-OCRv5_mobile_det.yml": (("Global.pretrained_model=https://paddleocr.bj.bcebos.com/pretrained/"
                                 "PPLCNetV3_x0_75_ocr_det.pdparams",), "ptocr train does not download"),
    "ch_PP-OCRv4_rec.yml": (("Train.dataset.name=SimpleDataSet",), "MultiScaleDataSet and Train.sampler "
                                                                     "MultiScaleSampler go together"),
    "PP-OCRv5_server_rec.yml": (("Global.use_wandb=true",), "Global.use_wandb=True is not supported"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused(name, shared_dir, tmp_path):
    extra, message = REFUSED[name]
    with pytest.raises(PtocrError, match=re.escape(message)):
        Trainer.from_config(CONFIGS / name, _overrides(name, shared_dir, tmp_path, extra=extra))


def test_a_multiscale_config_with_a_recresizeimg_is_refused(shared_dir, tmp_path):
    name = "ch_PP-OCRv4_rec.yml"
    ops = ("[{DecodeImage: {}}, {MultiLabelEncode: {gtc_encode: NRTRLabelEncode}}, "
           "{RecResizeImg: {image_shape: [3, 48, 320]}}, {KeepKeys: {keep_keys: [image]}}]")
    with pytest.raises(PtocrError, match="MultiScaleDataSet resizes to Train.sampler's scales itself"):
        Trainer.from_config(CONFIGS / name, _overrides(name, shared_dir, tmp_path,
                                                       extra=[f"Train.dataset.transforms={ops}"]))


@pytest.mark.parametrize("name", ["rec_en_number_lite_train.yml", "ch_det_mv3_db_v2.0.yml", "cls_mv3.yml",
                                  "ch_PP-OCRv4_rec.yml"])
def test_real_config_trains(name, shared_dir, tmp_path):
    """An epoch (two samples, batch 2: one iteration; MultiScaleSampler finishes its round of
    scales: three) and the evaluations after each iteration."""
    _, _, _, model, extra = BUILDS[name]
    extra = [*extra, "Global.epoch_num=1", "Global.eval_batch_step=[0,1]", "Global.print_batch_step=1"]
    trainer = Trainer.from_config(CONFIGS / name, _overrides(name, shared_dir, tmp_path, model, extra))
    result = trainer.run()
    assert result["global_step"] == len(trainer.train_loader) == (3 if name == "ch_PP-OCRv4_rec.yml" else 1)
    assert trainer.metric.main_indicator in result["best"]
    assert (tmp_path / "out" / "latest.safetensors").is_file()
