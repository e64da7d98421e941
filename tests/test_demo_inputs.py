"""The real inputs ``ptocr export`` checks on: the demo scene's text lines are text lines, and
every task gets the sizes its export must take."""

import numpy as np
import pytest

import ptocr
from ptocr.demo_inputs import demo_crops, demo_inputs, demo_scene
from ptocr.export import example_input

MODELS = {"det": "ch_PP-OCRv4_det_infer", "rec": "ch_PP-OCRv4_rec_infer", "cls": "ch_ppocr_mobile_v2.0_cls_infer"}


@pytest.fixture(scope="module")
def predictors(shared_dir):
    return {task: ptocr.load(shared_dir / "paddle_models" / name) for task, name in MODELS.items()}


def test_the_boxes_cut_out_what_the_pipeline_reads(predictors):
    """Each crop reads as one of the lines the whole pipeline finds in the scene, confidently:
    a box off its line would cut out part of one, or none."""
    ocr = ptocr.OCR(det=predictors["det"], rec=predictors["rec"], cls=predictors["cls"])
    lines = {line.text for line in ocr(demo_scene())}
    got = predictors["rec"](demo_crops())
    assert len(got) == 6
    for text, score in got:
        assert text in lines and score > 0.9, (text, score, sorted(lines))


@pytest.mark.parametrize("task", MODELS)
def test_dynamic_inputs_vary_what_the_export_leaves_free(predictors, task):
    config = predictors[task].config
    xs = demo_inputs(config)
    assert all(x.dtype == np.float32 and x.ndim == 4 for x in xs)
    assert max(len(x) for x in xs) > 1 and min(len(x) for x in xs) == 1  # batch sizes
    traced = example_input(config).shape
    if task == "det":
        assert len({x.shape[2:] for x in xs}) > 1
        assert all(h % 32 == 0 and w % 32 == 0 for *_, h, w in (x.shape for x in xs))
    else:  # height and channels as the model takes them
        assert {x.shape[1:3] for x in xs} == {tuple(traced[1:3])}
    if task == "rec":
        assert len({x.shape[3] for x in xs}) > 1
    if task == "cls":
        assert {x.shape[1:] for x in xs} == {tuple(traced[1:])}


@pytest.mark.parametrize("task", MODELS)
def test_static_inputs_have_the_one_shape(predictors, task):
    shape = (5, 3, 64, 96) if task == "det" else (6, *example_input(predictors[task].config).shape[1:])
    xs = demo_inputs(predictors[task].config, shape)
    assert [x.shape for x in xs] == [tuple(shape)] * 2
    assert not np.array_equal(xs[0], xs[1])
    assert all(np.ptp(x) > 1 for x in xs)  # normalized pixels, not padding alone
