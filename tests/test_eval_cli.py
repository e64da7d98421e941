"""``ptocr eval -c CONFIG.yml -o ...``: PaddleOCR's tools/eval.py. The metric it prints for a real
model over word crops / a scene equals what ``ptocr.training.evaluate_rec`` / ``evaluate_det``
(an independent path: the predictor itself) give; a checkpoint ``ptocr train`` wrote evaluates to
the best metric that run logged; what it cannot evaluate is one line, exit 2.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import intra_op_threads
from test_train_cli import DECODE, SCENE, WORDS, _rec_config, _write
from test_train_cli import _fails as train_fails

import ptocr
from ptocr import cli
from ptocr.training import evaluate_det, evaluate_rec

CONFIGS = Path(__file__).parent / "fixtures" / "paddleocr_configs"
REC_INFER = "en_number_mobile_v2.0_rec_infer"
DET_INFER = "ch_ppocr_mobile_v2.0_det_infer"
# The four crops read right, and one labelled wrong ("PAIN" as "PAINT"): acc 4/5, norm_edit_dis 1 - (1/5)/5.
LABELS = [*WORDS.items(), ("en2/word_10.png", "PAINT")]


@pytest.fixture(autouse=True)
def one_thread():
    with intra_op_threads(1):
        yield


def _eval(*args) -> str:
    run = CliRunner().invoke(cli.main, ["eval", *args])
    assert run.exit_code == 0, run.output
    return run.output


def _printed(output: str, block: str = "metric eval") -> dict[str, float]:
    """The ``key:value`` lines tools/eval.py prints after ``<block> ***************``."""
    lines = output.split(f"{block} ***************", 1)[1].splitlines()[1:]
    found = {}
    for line in lines:
        m = re.search(r"INFO: (\w+):([-0-9.e]+)$", line)
        if not m:
            break
        found[m.group(1)] = float(m.group(2))
    return found


def _label_file(path: Path, lines) -> Path:
    path.write_text("".join(f"{p}\t{t}\n" for p, t in lines), encoding="utf-8")
    return path


def _rec_eval_config(shared_dir, tmp_path) -> dict:
    """The en_number fine-tune's config (test_train_cli's) with no Train, Loss or Optimizer: tools/eval.py
    reads none of them. Eval: the crops in batches of 2, padded to 320 as RecResizeImg does."""
    config = _rec_config(shared_dir, tmp_path)
    for key in ("Train", "Loss", "Optimizer"):
        del config[key]
    model = shared_dir / "paddle_models" / REC_INFER
    config["Global"].update(pretrained_model=str(model), character_dict_path=str(model / "en_dict.txt"))
    data = config["Eval"]["dataset"]
    data["label_file_list"] = [str(_label_file(tmp_path / "eval.txt", LABELS))]
    config["Eval"]["loader"]["batch_size_per_card"] = 2
    return config


def test_rec_metric_is_evaluate_recs(shared_dir, tmp_path):
    config = _rec_eval_config(shared_dir, tmp_path)
    out = _eval("-c", _write(config, tmp_path / "rec.yml"))
    printed = _printed(out)
    expected = evaluate_rec(ptocr.load(shared_dir / "paddle_models" / REC_INFER), config["Eval"]["dataset"]
                            ["label_file_list"][0], data_dir=config["Eval"]["dataset"]["data_dir"])
    assert {k: printed[k] for k in ("acc", "norm_edit_dis")} == expected
    assert expected == pytest.approx({"acc": 4 / 5, "norm_edit_dis": 1 - (1 / 5) / 5}, abs=1e-5)
    assert printed["fps"] > 0 and "metric in ckpt" not in out  # a pretrained model has no recorded best


def test_multihead_config_evaluates_its_ctc_branch(shared_dir, tmp_path):
    """PaddleOCR's ch_PP-OCRv4_rec.yml unchanged but for data and model: MultiHead, MultiLabelEncode in
    Eval, RecResizeImg eval_mode (each crop at its own width); the CTC branch is what is scored."""
    label = _label_file(tmp_path / "eval.txt", LABELS)
    model = shared_dir / "paddle_models" / "ch_PP-OCRv4_rec_infer"
    out = _eval("-c", str(CONFIGS / "ch_PP-OCRv4_rec.yml"), "-o", "Global.use_gpu=false",
                f"Global.pretrained_model={model}", f"Eval.dataset.data_dir={shared_dir / 'images' / 'words'}",
                f"Eval.dataset.label_file_list=[{label}]", "Eval.loader.num_workers=0")
    expected = evaluate_rec(ptocr.load(model), label, data_dir=shared_dir / "images" / "words")
    printed = _printed(out)
    assert {k: printed[k] for k in ("acc", "norm_edit_dis")} == expected
    assert 0 < expected["acc"] < 1


def test_a_trained_checkpoint_evaluates_to_its_logged_best(shared_dir, tmp_path):
    """One step on the four crops, evaluated on those and on three others (labels not what the
    model reads: a norm_edit_dis that moves with the weights)."""
    config = _rec_config(shared_dir, tmp_path)
    config["Global"].update(epoch_num=1, eval_batch_step=[0, 1], save_epoch_step=10)
    others = [("en2/word_116.png", "THOUGH"), ("en2/word_336.png", "SUPERB"), ("en2/word_52.png", "Futures")]
    label = _label_file(tmp_path / "eval.txt", [*WORDS.items(), *others])
    config["Eval"]["dataset"]["label_file_list"] = [str(label)]
    run = CliRunner().invoke(cli.main, ["train", "-c", _write(config, tmp_path / "rec.yml")])
    assert run.exit_code == 0, run.output
    logged = re.findall(r"best metric, acc: ([0-9.e-]+), norm_edit_dis: ([0-9.e-]+)", run.output)[-1]
    # As PaddleOCR users do: the run's own config.yml and its best_accuracy.
    out_dir = tmp_path / "out"
    out = _eval("-c", str(out_dir / "config.yml"), "-o", f"Global.checkpoints={out_dir / 'best_accuracy'}")
    recorded = json.loads((out_dir / "best_accuracy.states.json").read_text(encoding="utf-8"))["best_model_dict"]
    printed = _printed(out)
    independent = evaluate_rec(ptocr.load(out_dir / "best_accuracy.safetensors"), label,
                               data_dir=config["Eval"]["dataset"]["data_dir"])
    for k, v in zip(("acc", "norm_edit_dis"), logged):
        assert float(v) == recorded[k] == printed[k] == independent[k]
    assert 0 < printed["norm_edit_dis"] < 1
    # The checkpoint's weights, not the config's pretrained_model (the run's start) that reads otherwise.
    assert _printed(_eval("-c", str(out_dir / "config.yml")))["norm_edit_dis"] != printed["norm_edit_dis"]
    assert _printed(out, "metric in ckpt")["acc"] == recorded["acc"]  # tools/eval.py shows the recorded best first
    # The model file alone (the states pair is for resuming) evaluates the same.
    for suffix in (".states.json", ".states.safetensors"):
        (out_dir / f"best_accuracy{suffix}").unlink()
    again = _eval("-c", str(out_dir / "config.yml"), "-o", f"Global.checkpoints={out_dir / 'best_accuracy'}")
    assert _printed(again)["acc"] == printed["acc"] and "metric in ckpt" not in again


def test_det_metric_is_evaluate_dets(shared_dir, tmp_path):
    """ch_ppocr_mobile_v2.0_det over two scenes with boxes written by hand (one text line left out,
    one "###"), at the eval resize evaluate_det runs (shorter side to 736)."""
    boxes = [*SCENE[1], {"transcription": "###", "points": [[80, 300], [200, 300], [200, 320], [80, 320]]}]
    other = [{"transcription": "x", "points": [[10, 10], [120, 10], [120, 40], [10, 40]]}]
    label = _label_file(tmp_path / "det.txt", [(SCENE[0], json.dumps(boxes)), ("scenes/1.jpg", json.dumps(other))])
    normalize = {"NormalizeImage": {"scale": "1./255.", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                                    "order": "hwc"}}
    ops = [DECODE, {"DetLabelEncode": None}, {"DetResizeForTest": {"limit_side_len": 736, "limit_type": "min"}},
           normalize, {"ToCHWImage": None}, {"KeepKeys": {"keep_keys": ["image", "shape", "polys", "ignore_tags"]}}]
    config = {
        "Global": {"use_gpu": False, "pretrained_model": str(shared_dir / "paddle_models" / DET_INFER)},
        "Architecture": {"model_type": "det", "algorithm": "DB", "Transform": None,
                         "Backbone": {"name": "MobileNetV3", "scale": 0.5, "model_name": "large", "disable_se": True},
                         "Neck": {"name": "DBFPN", "out_channels": 96}, "Head": {"name": "DBHead", "k": 50}},
        "PostProcess": {"name": "DBPostProcess", "thresh": 0.3, "box_thresh": 0.6, "max_candidates": 1000,
                        "unclip_ratio": 1.5},
        "Metric": {"name": "DetMetric", "main_indicator": "hmean"},
        "Eval": {"dataset": {"name": "SimpleDataSet", "data_dir": str(shared_dir / "images"),
                             "label_file_list": [str(label)], "transforms": ops},
                 "loader": {"shuffle": False, "drop_last": False, "batch_size_per_card": 1, "num_workers": 0}},
    }
    printed = _printed(_eval("-c", _write(config, tmp_path / "det.yml")))
    expected = evaluate_det(ptocr.load(shared_dir / "paddle_models" / DET_INFER), label, data_dir=shared_dir / "images")
    assert {k: printed[k] for k in ("precision", "recall", "hmean")} == expected
    assert 0 < expected["precision"] < 1 and 0 < expected["recall"] <= 1


_fails = functools.partial(train_fails, command="eval")  # the one line of ptocr: error: ..., exit 2


def test_what_cannot_be_evaluated_is_one_line(shared_dir, tmp_path):
    config = _rec_eval_config(shared_dir, tmp_path)
    path = _write(config, tmp_path / "rec.yml")
    assert "the config has no Eval section (a mapping); ptocr eval needs Global, Architecture, PostProcess, Metric, " \
           "Eval" in _fails(path, "Eval=")
    assert "no model to evaluate: give -o Global.checkpoints=" in _fails(path, "Global.pretrained_model=")
    assert "Global.checkpoints" in _fails(path, f"Global.checkpoints={tmp_path / 'none'}")
    # PaddleOCR's own training checkpoint (best_accuracy.pdparams alone): said so, not 'best_accuracy.safetensors
    # is missing'.
    paddle = shared_dir / "paddle_models" / "en_number_mobile_v2.0_rec_train_finetune" / "best_accuracy"
    message = _fails(path, f"Global.checkpoints={paddle}")
    assert "a PaddleOCR checkpoint (best_accuracy.pdparams)" in message and \
        "give it as Global.pretrained_model" in message and "is missing" not in message
    # A checkpoint of another architecture; one whose head is not the dictionary's size.
    det = ptocr.save_model(ptocr.create_model("ch_ppocr_mobile_v2.0_det"), tmp_path / "det.safetensors")
    assert "holds a ch_ppocr_mobile_v2.0_det model, not ch_ppocr_mobile_v2.0_rec" in _fails(
        path, f"Global.checkpoints={det.with_suffix('')}")
    rec = ptocr.create_model("ch_ppocr_mobile_v2.0_rec", pretrained=shared_dir / "paddle_models" / REC_INFER)
    ptocr.save_model(rec, tmp_path / "rec.safetensors")
    small = tmp_path / "letters.txt"
    small.write_text("".join(c + "\n" for c in sorted(set("".join(WORDS.values())))), encoding="utf-8")
    assert "its head has 97 classes, the config's dictionary makes 14" in _fails(
        path, f"Global.checkpoints={tmp_path / 'rec'}", f"Global.character_dict_path={small}")
    # Pretrained weights too: an evaluation does not start a head afresh, as training would.
    assert "Global.pretrained_model" in _fails(path, f"Global.character_dict_path={small}")
    # Missing data.
    assert "Eval.dataset.data_dir is not set" in _fails(path, "Eval.dataset.data_dir=")
    assert "none.txt" in _fails(path, f"Eval.dataset.label_file_list=[{tmp_path / 'none.txt'}]")
    empty = _label_file(tmp_path / "empty.txt", [])
    assert "the label files hold no lines" in _fails(path, f"Eval.dataset.label_file_list=[{empty}]")
    # Images not there: each logged and the next drawn, as PaddleOCR's Eval data does, until it gives up.
    run = CliRunner().invoke(cli.main, ["eval", "-c", path, "-o", f"Eval.dataset.data_dir={tmp_path}"])
    assert run.exit_code == 2 and "ptocr: error: 100 samples in a row could not be made" in run.output.splitlines()[-1]


def test_cls_metric_is_evaluate_clss(shared_dir, tmp_path):
    """PaddleOCR's cls_mv3.yml unchanged but for data and model: word crops upright and turned
    (labels "0" / "180", one turned crop labelled "0" on purpose), scored as evaluate_cls scores them."""
    import cv2

    from ptocr.training import evaluate_cls

    lines = []
    for i, (path, _) in enumerate(list(WORDS.items())[:3]):
        image = cv2.imread(str(shared_dir / "images" / "words" / path))
        cv2.imwrite(str(tmp_path / f"up{i}.png"), image)
        cv2.imwrite(str(tmp_path / f"turned{i}.png"), cv2.rotate(image, cv2.ROTATE_180))
        lines += [(f"up{i}.png", "0"), (f"turned{i}.png", "180" if i else "0")]
    label = _label_file(tmp_path / "cls.txt", lines)
    model = shared_dir / "paddle_models" / "ch_ppocr_mobile_v2.0_cls_infer"
    out = _eval("-c", str(CONFIGS / "cls_mv3.yml"), "-o", "Global.use_gpu=false", f"Global.pretrained_model={model}",
                f"Eval.dataset.data_dir={tmp_path}", f"Eval.dataset.label_file_list=[{label}]",
                "Eval.loader.num_workers=0")
    expected = evaluate_cls(ptocr.load(model), label, data_dir=tmp_path)
    assert {"acc": _printed(out)["acc"]} == expected
    assert 0 < expected["acc"] < 1
