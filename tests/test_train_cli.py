"""``ptocr train -c CONFIG.yml -o Key=value``: PaddleOCR's tools/train.py on its own configs.

Configs are written here in PaddleOCR's form (the en_number v2.0 fine-tune's own config.yml
settings; ch_det_mv3_db_v2.0.yml's for the detector, its Eval resize to a fixed image_shape
included; cls_mv3.yml's less its augmentations) over real word crops and one scene.
"""

from __future__ import annotations

import json
import os
import re
import stat

import pytest
import torch
import yaml
from click.testing import CliRunner
from conftest import intra_op_threads
from safetensors.torch import load_file

import ptocr
from ptocr import cli
from ptocr.training.multihead import MultiHeadTraining
from ptocr.training.trainer import Trainer

# Read by eye (tests/test_training_metrics.py's): four crops to overfit.
WORDS = {"en2/word_10.png": "PAIN", "en2/word_19.png": "SLOW", "en2/word_201.png": "HOUSE",
         "en2/word_308.png": "LITTLE"}
REC_FINETUNE = "en_number_mobile_v2.0_rec_train_finetune"
DET_TRAIN = "ch_ppocr_mobile_v2.0_det_train"
# 00009282.jpg (350 x 350): two of its text lines.
SCENE = ("scenes/00009282.jpg", [{"transcription": "a", "points": [[87, 265], [236, 268], [236, 281], [86, 279]]},
                                 {"transcription": "b", "points": [[82, 230], [132, 227], [132, 241], [83, 244]]}])
DECODE = {"DecodeImage": {"img_mode": "BGR", "channel_first": False}}


@pytest.fixture(autouse=True)
def one_thread():
    with intra_op_threads(1):
        yield


def _rec_config(shared_dir, tmp_path) -> dict:
    label = tmp_path / "train.txt"
    label.write_text("".join(f"{p}\t{t}\n" for p, t in WORDS.items()), encoding="utf-8")
    model = shared_dir / "paddle_models" / REC_FINETUNE
    transforms = [DECODE, {"CTCLabelEncode": None}, {"RecResizeImg": {"image_shape": [3, 32, 320]}},
                  {"KeepKeys": {"keep_keys": ["image", "label", "length"]}}]
    data = {"name": "SimpleDataSet", "data_dir": str(shared_dir / "images" / "words"),
            "label_file_list": [str(label)], "transforms": transforms}
    return {
        "Global": {"use_gpu": False, "epoch_num": 4, "log_smooth_window": 1, "print_batch_step": 1,
                   "save_model_dir": str(tmp_path / "out"), "save_epoch_step": 2, "eval_batch_step": [0, 2],
                   "cal_metric_during_train": True, "pretrained_model": str(model / "best_accuracy"),
                   "checkpoints": None, "character_dict_path": str(model / "en_dict.txt"), "character_type": "EN",
                   "max_text_length": 25, "use_space_char": True, "distributed": True},
        "Optimizer": {"name": "Adam", "beta1": 0.9, "beta2": 0.999, "lr": {"name": "Cosine", "learning_rate": 0.001},
                      "regularizer": {"name": "L2", "factor": 1.0e-05}},
        "Architecture": {"model_type": "rec", "algorithm": "CRNN", "Transform": None,
                         "Backbone": {"name": "MobileNetV3", "scale": 0.5, "model_name": "small",
                                      "small_stride": [1, 2, 2, 2]},
                         "Neck": {"name": "SequenceEncoder", "encoder_type": "rnn", "hidden_size": 48},
                         "Head": {"name": "CTCHead", "fc_decay": 1.0e-05}},
        "Loss": {"name": "CTCLoss"},
        "PostProcess": {"name": "CTCLabelDecode"},
        "Metric": {"name": "RecMetric", "main_indicator": "acc"},
        "Train": {"dataset": dict(data), "loader": {"shuffle": False, "batch_size_per_card": 4, "drop_last": True,
                                                    "num_workers": 0}},
        "Eval": {"dataset": dict(data), "loader": {"shuffle": False, "batch_size_per_card": 4, "drop_last": False,
                                                   "num_workers": 0}},
    }


def _write(config: dict, path) -> str:
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return str(path)


def _train(config_path, *overrides) -> str:
    run = CliRunner().invoke(cli.main, ["train", "-c", config_path, *overrides])
    assert run.exit_code == 0, run.output
    return run.output


def _losses(log: str) -> list[float]:
    return [float(v) for v in re.findall(r"global_step: \d+, .*? loss: ([0-9.]+)", log)]


def test_rec_fine_tune_overfits_saves_and_resumes(shared_dir, tmp_path):
    config = _write(_rec_config(shared_dir, tmp_path), tmp_path / "rec.yml")
    out = tmp_path / "out"
    log = _train(config)
    # PaddleOCR's line every print_batch_step, also in train.log; the loss falls as 4 crops are overfit.
    assert re.search(r"epoch: \[1/4\], global_step: 1, acc: [0-9.]+, norm_edit_dis: [0-9.]+, loss: [0-9.]+, "
                     r"lr: 0.001000, avg_reader_cost: [0-9.]+ s, avg_batch_cost: [0-9.]+ s, avg_samples: 4.0, "
                     r"ips: [0-9.]+ samples/s, eta: ", log)
    assert (out / "train.log").read_text(encoding="utf-8").count("global_step:") == 4
    losses = _losses(log)
    assert len(losses) == 4 and losses[-1] < losses[0] / 2, losses
    assert "cur metric, acc:" in log and (out / "config.yml").is_file()

    best = ptocr.load(out / "best_accuracy.safetensors")
    assert best(str(shared_dir / "images" / "words" / "en2" / "word_10.png"))[0] == "PAIN"
    record = json.loads((out / "best_accuracy.states.json").read_text(encoding="utf-8"))
    assert record["best_model_dict"]["acc"] > 0.99 and record["architecture"] == "ch_ppocr_mobile_v2.0_rec"
    mask = os.umask(0)
    os.umask(mask)
    for prefix in ("latest", "iter_epoch_2", "iter_epoch_4"):
        assert (out / f"{prefix}.safetensors").is_file() and (out / f"{prefix}.states.safetensors").is_file()
        for suffix in (".safetensors", ".states.safetensors", ".states.json"):  # not safetensors' own 0600
            assert stat.S_IMODE((out / f"{prefix}{suffix}").stat().st_mode) == 0o666 & ~mask, prefix + suffix
    assert not list(out.glob("*.pdparams")) and not list(out.glob("*.pkl"))

    # Resume from the epoch-2 checkpoint (-o as PaddleOCR's, several after one -o): epochs 3 and 4
    # run at global steps 3 and 4 from the saved optimizer state, ending where the straight run did.
    log = _train(config, "-o", f"Global.checkpoints={out / 'iter_epoch_2'}", f"Global.save_model_dir={tmp_path / 'again'}")
    assert "global_step: 1," not in log and re.search(r"epoch: \[3/4\], global_step: 3,", log)
    straight, resumed = load_file(str(out / "latest.safetensors")), load_file(str(tmp_path / "again" / "latest.safetensors"))
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)
    first, second = (load_file(str(d / "latest.states.safetensors")) for d in (out, tmp_path / "again"))
    adam = [k for k in first if k.startswith("state.")]
    assert adam and all(torch.equal(first[k], second[k]) for k in adam)


def test_det_from_the_paddle_training_checkpoint(shared_dir, tmp_path):
    label = tmp_path / "det.txt"
    label.write_text(f"{SCENE[0]}\t{json.dumps(SCENE[1])}\n", encoding="utf-8")
    normalize = {"NormalizeImage": {"scale": "1./255.", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                                    "order": "hwc"}}
    train_ops = [DECODE, {"DetLabelEncode": None},
                 {"IaaAugment": {"augmenter_args": [{"type": "Fliplr", "args": {"p": 0.5}},
                                                    {"type": "Affine", "args": {"rotate": [-10, 10]}},
                                                    {"type": "Resize", "args": {"size": [0.5, 3]}}]}},
                 {"EastRandomCropData": {"size": [160, 160], "max_tries": 50, "keep_ratio": True}},
                 {"MakeBorderMap": {"shrink_ratio": 0.4, "thresh_min": 0.3, "thresh_max": 0.7}},
                 {"MakeShrinkMap": {"shrink_ratio": 0.4, "min_text_size": 8}}, normalize, {"ToCHWImage": None},
                 {"KeepKeys": {"keep_keys": ["image", "threshold_map", "threshold_mask", "shrink_map", "shrink_mask"]}}]
    eval_ops = [DECODE, {"DetLabelEncode": None}, {"DetResizeForTest": {"image_shape": [352, 352]}},
                normalize, {"ToCHWImage": None}, {"KeepKeys": {"keep_keys": ["image", "shape", "polys", "ignore_tags"]}}]
    data = {"name": "SimpleDataSet", "data_dir": str(shared_dir / "images"), "label_file_list": [str(label)] * 2,
            "ratio_list": [1.0, 1.0]}
    loader = {"shuffle": True, "drop_last": False, "batch_size_per_card": 1, "num_workers": 0}
    config = {
        "Global": {"use_gpu": False, "epoch_num": 1, "log_smooth_window": 20, "print_batch_step": 1,
                   "save_model_dir": str(tmp_path / "det"), "save_epoch_step": 1, "eval_batch_step": [0, 2],
                   "cal_metric_during_train": False,
                   "pretrained_model": str(shared_dir / "paddle_models" / DET_TRAIN / "best_accuracy"),
                   "checkpoints": None},
        "Architecture": {"model_type": "det", "algorithm": "DB", "Transform": None,
                         "Backbone": {"name": "MobileNetV3", "scale": 0.5, "model_name": "large", "disable_se": True},
                         "Neck": {"name": "DBFPN", "out_channels": 96}, "Head": {"name": "DBHead", "k": 50}},
        "Loss": {"name": "DBLoss", "balance_loss": True, "main_loss_type": "DiceLoss", "alpha": 5, "beta": 10,
                 "ohem_ratio": 3},
        "Optimizer": {"name": "Adam", "beta1": 0.9, "beta2": 0.999, "lr": {"learning_rate": 0.001},
                      "regularizer": {"name": "L2", "factor": 0}},
        "PostProcess": {"name": "DBPostProcess", "thresh": 0.3, "box_thresh": 0.6, "max_candidates": 1000,
                        "unclip_ratio": 1.5},
        "Metric": {"name": "DetMetric", "main_indicator": "hmean"},
        "Train": {"dataset": {**data, "transforms": train_ops}, "loader": loader},
        "Eval": {"dataset": {**data, "label_file_list": [str(label)], "ratio_list": [1.0], "transforms": eval_ops},
                 "loader": {**loader, "shuffle": False}},
    }
    log = _train(_write(config, tmp_path / "det.yml"))
    assert "loss_shrink_maps:" in log and "loss_threshold_maps:" in log and "global_step: 2," in log
    assert "threshold branch" not in log  # the training checkpoint holds a trained one
    assert re.search(r"cur metric, precision: [0-9.]+, recall: [0-9.]+, hmean: [0-9.]+", log)
    det = ptocr.load(tmp_path / "det" / "best_accuracy.safetensors")
    assert det.config["architecture"] == "ch_ppocr_mobile_v2.0_det" and det.config["model"]["head"]["with_thresh"]


def test_multihead_config_builds_the_gtc_branch_and_its_targets(shared_dir, tmp_path):
    """A ch_PP-OCRv4_rec.yml-shaped config: MultiHead (CTC + NRTR), MultiLoss, MultiLabelEncode,
    MultiScaleSampler; built only (a v4 step is too slow for this suite)."""
    config = _rec_config(shared_dir, tmp_path)
    config["Global"].update(pretrained_model=None, max_text_length=25)
    config["Architecture"] = {
        "model_type": "rec", "algorithm": "SVTR_LCNet", "Transform": None,
        "Backbone": {"name": "PPLCNetV3", "scale": 0.95},
        "Head": {"name": "MultiHead", "head_list": [
            {"CTCHead": {"Neck": {"name": "svtr", "dims": 120, "depth": 2, "hidden_dims": 120, "kernel_size": [1, 3],
                                  "use_guide": True}, "Head": {"fc_decay": 0.00001}}},
            {"NRTRHead": {"nrtr_dim": 384, "max_text_length": 25}}]}}
    config["Loss"] = {"name": "MultiLoss", "loss_config_list": [{"CTCLoss": None}, {"NRTRLoss": None}]}
    for section in ("Train", "Eval"):
        config[section]["dataset"]["transforms"] = [
            DECODE, {"MultiLabelEncode": {"gtc_encode": "NRTRLabelEncode"}},
            {"RecResizeImg": {"image_shape": [3, 48, 320]}},
            {"KeepKeys": {"keep_keys": ["image", "label_ctc", "label_gtc", "length", "valid_ratio"]}}]
    config["Train"]["dataset"]["name"] = "MultiScaleDataSet"  # it resizes to the sampler's scales itself
    del config["Train"]["dataset"]["transforms"][2]  # RecResizeImg
    config["Train"]["sampler"] = {"name": "MultiScaleSampler", "scales": [[320, 32], [320, 48], [320, 64]],
                                  "first_bs": 2, "fix_bs": False, "divided_factor": [8, 16], "is_training": True}
    trainer = Trainer.from_config(config)
    assert isinstance(trainer.net, MultiHeadTraining) and trainer.net.settings["nrtr_dim"] == 384
    batch = next(iter(trainer.train_loader))
    assert {"label_ctc", "label_gtc", "length"} <= set(batch) and batch["image"].shape[2] in (32, 48, 64)
    losses = trainer.criterion(trainer.net(batch["image"], batch), batch)
    assert set(losses) == {"CTCLoss", "NRTRLoss", "loss"} and torch.isfinite(losses["loss"])


def _fails(config_path, *overrides, command: str = "train") -> str:
    run = CliRunner().invoke(cli.main, [command, "-c", config_path, "-o", *overrides])
    assert run.exit_code == 2, run.output
    lines = run.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ptocr: error: "), run.output
    return lines[0]


def test_bad_configs_fail_with_one_line(shared_dir, tmp_path):
    config = _write(_rec_config(shared_dir, tmp_path), tmp_path / "rec.yml")
    assert "algorithm 'SRN' is not supported for model_type rec" in _fails(config, "Architecture.algorithm=SRN")
    assert "closest: ch_ppocr_mobile_v2.0_rec (backbone.scale: 0.75 here, 0.5" in _fails(
        config, "Architecture.Backbone.scale=0.75")
    assert "Train.dataset.data_dir is not set" in _fails(config, "Train.dataset.data_dir=")
    assert "Global.use_visualdl=True is not supported" in _fails(config, "Global.use_visualdl=true")
    assert "Global.epochs is not a setting ptocr train reads (did you mean epoch_num" in _fails(config, "Global.epochs=3")
    assert "the config has no section 'Nope'" in _fails(config, "Nope.x=1")
    assert "Train.transforms: RandAugment is not supported for rec" in _fails(
        config, "Train.dataset.transforms=[{DecodeImage: {}}, {RandAugment: {}}, {CTCLabelEncode: },"
                " {RecResizeImg: {image_shape: [3, 32, 320]}}]").replace(".dataset", "")
    assert "MultiLoss trains a MultiHead" in _fails(config, "Loss.name=MultiLoss")
    if not torch.cuda.is_available():
        assert "Global.use_gpu is true but this torch has no CUDA device" in _fails(config, "Global.use_gpu=true")


def test_a_dictionary_that_does_not_match_the_checkpoint(shared_dir, tmp_path):
    config = _rec_config(shared_dir, tmp_path)
    config["Global"].update(epoch_num=1, eval_batch_step=[0, 100])
    path = _write(config, tmp_path / "rec.yml")
    _train(path)
    small = tmp_path / "letters.txt"
    small.write_text("".join(c + "\n" for c in sorted(set("".join(WORDS.values())))), encoding="utf-8")
    message = _fails(path, f"Global.checkpoints={tmp_path / 'out' / 'latest'}", f"Global.character_dict_path={small}")
    assert "its head has 97 classes, the config's dictionary makes 14" in message
    assert "cannot read dictionary" in _fails(path, f"Global.character_dict_path={tmp_path / 'none.txt'}")
    # From pretrained weights (not a checkpoint) a new dictionary is a fresh last layer, as PaddleOCR's
    # load_model skips the mismatched weights.
    new = Trainer.from_config(path, [f"Global.character_dict_path={small}"])
    assert new.net.head.out_channels == 14 and new.dictionary.characters == tuple(sorted(set("".join(WORDS.values()))))
    # PaddleOCR's configs name its repository's files: ptocr's copy of one stands in.
    config["Global"]["character_dict_path"] = "ppocr/utils/en_dict.txt"
    assert Trainer.from_config(config).dictionary.source == "ptocr/dicts/en_dict.txt"
    # A checkpoint whose parts do not belong together; PaddleOCR's own, whose optimizer state is a pickle.
    states = tmp_path / "out" / "latest.states.safetensors"
    states.write_bytes(states.read_bytes() + b" ")
    assert "does not belong with latest.states.json" in _fails(path, f"Global.checkpoints={tmp_path / 'out' / 'latest'}")
    paddle = shared_dir / "paddle_models" / REC_FINETUNE / "best_accuracy"
    assert "a PaddleOCR checkpoint (best_accuracy.pdparams)" in _fails(path, f"Global.checkpoints={paddle}")


def test_cls_from_the_inference_model(shared_dir, tmp_path):
    label = tmp_path / "cls.txt"
    label.write_text("".join(f"{p}\t{a}\n" for p, a in zip(WORDS, ["0", "180", "0", "180"])), encoding="utf-8")
    ops = [DECODE, {"ClsLabelEncode": None}, {"ClsResizeImg": {"image_shape": [3, 48, 192]}},
           {"KeepKeys": {"keep_keys": ["image", "label"]}}]
    data = {"name": "SimpleDataSet", "data_dir": str(shared_dir / "images" / "words"), "label_file_list": None,
            "transforms": ops}
    loader = {"shuffle": True, "batch_size_per_card": 2, "drop_last": True, "num_workers": 0}
    config = {
        "Global": {"use_gpu": False, "epoch_num": 1, "print_batch_step": 1, "save_model_dir": str(tmp_path / "cls"),
                   "eval_batch_step": [0, 2], "cal_metric_during_train": True,
                   "pretrained_model": str(shared_dir / "paddle_models" / "ch_ppocr_mobile_v2.0_cls_infer")},
        "Architecture": {"model_type": "cls", "algorithm": "CLS", "Transform": None, "Neck": None,
                         "Backbone": {"name": "MobileNetV3", "scale": 0.35, "model_name": "small"},
                         "Head": {"name": "ClsHead", "class_dim": 2}},
        "Loss": {"name": "ClsLoss"}, "PostProcess": {"name": "ClsPostProcess"},
        "Optimizer": {"name": "Adam", "lr": {"name": "Cosine", "learning_rate": 0.001},
                      "regularizer": {"name": "L2", "factor": 0}},
        "Metric": {"name": "ClsMetric", "main_indicator": "acc"},
        "Train": {"dataset": data, "loader": loader}, "Eval": {"dataset": data, "loader": loader},
    }
    path = _write(config, tmp_path / "cls.yml")
    # A list value through -o, parsed as YAML as PaddleOCR parses it.
    log = _train(path, "-o", f"Train.dataset.label_file_list=[{label}]", f"Eval.dataset.label_file_list=[{label}]")
    assert re.search(r"global_step: 2, acc: [0-9.]+, loss: [0-9.]+", log) and "cur metric, acc:" in log
    assert ptocr.load(tmp_path / "cls" / "best_accuracy.safetensors").config["task"] == "cls"
    assert "SVTRRecAug is not supported for cls" in _fails(
        path, f"Train.dataset.label_file_list=[{label}]",
        "Train.dataset.transforms=[{DecodeImage: }, {ClsLabelEncode: }, {SVTRRecAug: }, {ClsResizeImg: {}}]")


@pytest.mark.parametrize("setting,message", [
    ("Train.loader.batch_size_per_card=0", "Train.loader.batch_size_per_card=0: a whole number of at least 1"),
    ("Train.loader.batch_size_per_card=-2", "Train.loader.batch_size_per_card=-2: a whole number of at least 1"),
    ("Train.loader.batch_size_per_card=abc", "Train.loader.batch_size_per_card='abc': a whole number of at least 1"),
    ("Eval.loader.batch_size_per_card=0", "Eval.loader.batch_size_per_card=0: a whole number of at least 1"),
    ("Train.loader.num_workers=-1", "Train.loader.num_workers=-1: a whole number of at least 0"),
])
def test_loader_numbers_fail_with_one_line(setting, message, shared_dir, tmp_path):
    """torch's DataLoader would raise a ValueError (a traceback, exit 1); nothing is written."""
    config = _write(_rec_config(shared_dir, tmp_path), tmp_path / "rec.yml")
    assert message in _fails(config, setting)
    assert not (tmp_path / "out").exists()
    if setting.startswith("Eval"):
        pretrained = f"Global.pretrained_model={shared_dir / 'paddle_models' / REC_FINETUNE / 'best_accuracy'}"
        assert message in _fails(config, setting, pretrained, command="eval")


def test_a_misspelled_op_is_named(shared_dir, tmp_path):
    """The op names are checked before the list's order: not 'RecResizeImg must be the last op'."""
    config = _write(_rec_config(shared_dir, tmp_path), tmp_path / "rec.yml")
    ops = "[{DecodeImage: }, {CTCLabelEncode: }, {RecResizeImg: {image_shape: [3, 32, 320]}}, {%s: {keep_keys: [image]}}]"
    message = _fails(config, "Train.dataset.transforms=" + ops % "KeepKey")
    assert "Train.dataset.transforms: KeepKey is not supported for rec by ptocr train (did you mean KeepKeys?)" in message
    assert "must be the last op" not in message
    message = _fails(config, "Eval.dataset.transforms=" + ops % "Unknown", command="eval")
    assert "Eval.dataset.transforms: Unknown is not supported for rec by ptocr train; supported for rec: " \
           "CTCLabelEncode, DecodeImage, KeepKeys, MultiLabelEncode, RecAug, RecConAug, RecResizeImg" in message


def test_resuming_past_epoch_num_is_refused_before_anything_is_written(shared_dir, tmp_path):
    config = _rec_config(shared_dir, tmp_path)
    config["Global"].update(epoch_num=2, eval_batch_step=[0, 100])
    path = _write(config, tmp_path / "rec.yml")
    _train(path)
    out = tmp_path / "out"
    written = {p.name: p.read_bytes() for p in out.iterdir()}
    for epochs in (1, 2):  # the loop would run epochs 3 to 1 (or 2): none
        message = _fails(path, f"Global.checkpoints={out / 'latest'}", f"Global.epoch_num={epochs}")
        assert (f"the checkpoint is at epoch 2; Global.epoch_num {epochs} leaves nothing to train "
                "(give epoch_num > 2)") in message
    assert {p.name: p.read_bytes() for p in out.iterdir()} == written  # config.yml, train.log as they were
    _fails(path, f"Global.checkpoints={out / 'latest'}", "Global.epoch_num=1", f"Global.save_model_dir={tmp_path / 'b'}")
    assert not (tmp_path / "b").exists()
    log = _train(path, "-o", f"Global.checkpoints={out / 'latest'}", "Global.epoch_num=3")
    assert "epochs 3 to 3" in log and "epoch: [3/3], global_step: 3," in log


def test_no_batches_counts_the_unusable_label_lines_and_writes_nothing(shared_dir, tmp_path):
    config = _write(_rec_config(shared_dir, tmp_path), tmp_path / "rec.yml")
    label = tmp_path / "two.txt"  # the second text is over max_text_length: redrawn if drawn, no sample
    label.write_text(f"en2/word_10.png\tPAIN\nen2/word_19.png\t{'SLOW' * 10}\n", encoding="utf-8")
    message = _fails(config, f"Train.dataset.label_file_list=[{label}]")
    assert "no batches in the train data: 2 label lines (1 unusable), batch_size_per_card 4 with drop_last" in message
    assert not (tmp_path / "out").exists()
    (tmp_path / "out").mkdir()  # a folder already there is kept, without a train.log
    assert "no batches in the train data: 4 samples, batch_size_per_card 8 with drop_last" in _fails(
        config, f"Train.dataset.label_file_list=[{tmp_path / 'train.txt'}]", "Train.loader.batch_size_per_card=8")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("section,ops,message", [
    ("det", "[{DecodeImage: }, {KeepKeys: {keep_keys: [image]}}, {DetLabelEncode: }, {ToCHWImage: }]",
     "KeepKeys must be the last op"),
    ("det", "[{DecodeImage: }, {DetLabelEncode: }, {DecodeImage: }, {ToCHWImage: }]",
     "DecodeImage must be the first op, and only the first"),
    ("rec", "[{DecodeImage: }, {CTCLabelEncode: }, {RecResizeImg: {image_shape: [3, 32, 320]}}, {RecAug: }, "
            "{RecResizeImg: {image_shape: [3, 32, 320]}}, {KeepKeys: {keep_keys: [image]}}]",
     "RecResizeImg must be the last op before KeepKeys, once"),
    ("rec", "[{DecodeImage: }, {CTCLabelEncode: }, {KeepKeys: {keep_keys: [image]}}, "
            "{RecResizeImg: {image_shape: [3, 32, 320]}}, {KeepKeys: {keep_keys: [image]}}]",
     "KeepKeys must be the last op"),
    ("cls", "[{DecodeImage: }, {ClsLabelEncode: }, {ClsLabelEncode: }, {ClsResizeImg: {}}]",
     "ClsLabelEncode must come right after DecodeImage, once"),
])
def test_a_misplaced_op_is_told_where_it_goes(section, ops, message, shared_dir, tmp_path):
    """An op the task's list may have, in the wrong place: where it must go, not 'KeepKeys is not
    supported for det (did you mean KeepKeys?)'."""
    config = _rec_config(shared_dir, tmp_path)
    if section != "rec":  # the architecture's task is what the list is read for
        config["Architecture"] = {"det": {"model_type": "det", "algorithm": "DB", "Transform": None,
                                          "Backbone": {"name": "MobileNetV3", "scale": 0.5, "model_name": "large",
                                                       "disable_se": True},
                                          "Neck": {"name": "DBFPN", "out_channels": 96},
                                          "Head": {"name": "DBHead", "k": 50}},
                                  "cls": {"model_type": "cls", "algorithm": "CLS", "Transform": None, "Neck": None,
                                          "Backbone": {"name": "MobileNetV3", "scale": 0.35, "model_name": "small"},
                                          "Head": {"name": "ClsHead", "class_dim": 2}}}[section]
        config["Loss"] = {"name": {"det": "DBLoss", "cls": "ClsLoss"}[section]}
        config["PostProcess"] = {"name": {"det": "DBPostProcess", "cls": "ClsPostProcess"}[section]}
        config["Metric"] = {"name": {"det": "DetMetric", "cls": "ClsMetric"}[section],
                            "main_indicator": {"det": "hmean", "cls": "acc"}[section]}
        config["Global"]["pretrained_model"] = None
    path = _write(config, tmp_path / "config.yml")
    line = _fails(path, "Train.dataset.transforms=" + ops)
    assert f"Train.dataset.transforms: {message}" in line and "not supported" not in line
