"""Bulk OCR (ptocr.bulk): ``read_many`` reads what ``read`` reads, image by image, in input order,
with an unreadable input reported in its place; images of one network size share a detector call."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import converted_folders, intra_op_threads, recorded_batches

from ptocr.bulk import BulkReader, FailedImage, is_uri, iter_pipeline, read_uri
from ptocr.errors import ImageError, PtocrError
from ptocr.pipeline import OCR

MODELS = {"det": "ch_PP-OCRv4_det_infer", "rec": "ch_PP-OCRv4_rec_infer", "cls": "ch_ppocr_mobile_v2.0_cls_infer"}
# Small scenes of different network sizes (ger_1 256x352, japan_1 160x288, 00018069 256x416).
SCENES = ("ger_1.jpg", "japan_1.jpg", "00018069.jpg")
# Merged crop groups change a model call's batch, and so its float32 rounding (measured: 5e-6 on
# the recognizer's probabilities, batch 6 vs 12); a line's score is a mean of those.
MERGED_SCORE_GAP = 1e-5


@pytest.fixture(scope="module")
def model_files(shared_dir, tmp_path_factory) -> dict[str, Path]:
    return converted_folders(shared_dir, tmp_path_factory.mktemp("bulk_models"), MODELS)


@pytest.fixture(scope="module")
def ocr(model_files):
    with intra_op_threads(1):
        yield OCR(model_files["det"], model_files["rec"], model_files["cls"])


@pytest.fixture(scope="module")
def inputs(shared_dir, tmp_path_factory) -> list:
    """Scenes as paths, an unreadable file in the middle, and a mirrored scene given as an array:
    the same network size as ger_1, so the two share a detector call."""
    scenes = [shared_dir / "images" / "scenes" / name for name in SCENES]
    bad = tmp_path_factory.mktemp("bulk_inputs") / "not_an_image.jpg"
    bad.write_bytes(b"hello, not a JPEG")
    mirrored = np.ascontiguousarray(cv2.imread(str(scenes[0]))[:, ::-1])
    return [scenes[0], scenes[1], bad, mirrored, scenes[2]]


@pytest.fixture(scope="module")
def expected(ocr, inputs) -> list:
    out = []
    for image in inputs:
        try:
            out.append(ocr.read(image))
        except ImageError as e:
            out.append(e)
    assert isinstance(out[2], ImageError) and sum(len(r) for r in out if not isinstance(r, Exception)) > 20
    return out


def _lines(result, score: bool = True):
    return [(line.box, line.text, line.angle, *((line.score,) if score else ())) for line in result]


def test_read_many_equals_read(ocr, inputs, expected):
    """Default on the CPU (each image's crop groups in calls of their own): bit for bit read's."""
    got = ocr.read_many(inputs, batch_size=4)
    assert len(got) == len(inputs)
    for image, want, have in zip(inputs, expected, got):
        if isinstance(want, ImageError):
            assert isinstance(have, FailedImage) and have.error == str(want) and "not_an_image.jpg" in have.error
            continue
        assert have.source == (str(image) if isinstance(image, Path) else None)
        assert _lines(have) == _lines(want)
        assert np.array_equal(have.image, want.image)


def test_merged_crop_groups_read_the_same_lines(ocr, inputs, expected):
    """merge=True (the CUDA default, here on the CPU): groups of equal shape from different
    images share calls; each image keeps its own groups, so texts and boxes are read's."""
    with recorded_batches(ocr.rec) as shapes:
        got = ocr.read_many(inputs, batch_size=8, merge=True)
    assert max(s[0] for s in shapes) > ocr.rec.pre.batch_size  # crops of several images in one call
    for want, have in zip(expected, got):
        if isinstance(want, ImageError):
            assert isinstance(have, FailedImage)
            continue
        assert _lines(have, score=False) == _lines(want, score=False)
        assert max(abs(a.score - b.score) for a, b in zip(have, want)) <= MERGED_SCORE_GAP


def test_same_size_images_share_a_detector_call(ocr, inputs, expected):
    with recorded_batches(ocr.det) as shapes:
        got = ocr.read_many(inputs, batch_size=8)
    assert sorted(s[0] for s in shapes) == [1, 1, 2]  # ger_1 and its mirror image together
    assert all(s[2:] != (256, 352) or s[0] == 2 for s in shapes)
    assert _lines(got[3]) == _lines(expected[3])


def test_two_lanes_read_the_same_lines(ocr, inputs, expected):
    """Two windows at once, one intra-op thread each (the CPU throughput setting)."""
    got = list(ocr.iter_many(inputs, batch_size=2, lanes=2))
    assert [isinstance(r, FailedImage) for r in got] == [isinstance(r, ImageError) for r in expected]
    for want, have in zip(expected, got):
        if not isinstance(want, ImageError):
            assert _lines(have, score=False) == _lines(want, score=False)


def test_iter_many_reads_a_stream_lazily(ocr, shared_dir):
    """The iterator form takes inputs as it needs them: a few windows ahead, not the stream."""
    scene = cv2.imread(str(shared_dir / "images" / "scenes" / "japan_1.jpg"))
    taken = []

    def stream():
        for k in range(1000):
            taken.append(k)
            yield scene

    results = ocr.iter_many(stream(), batch_size=2, lanes=1)
    first = next(results)
    assert len(first) > 0 and len(taken) <= 3 * 2 + 2
    results.close()


def test_a_pil_image_it_cannot_read_fails_alone(ocr, shared_dir):
    # A closed PIL image raised ValueError out of read_many (every result lost) and out of read.
    from PIL import Image

    path = shared_dir / "images" / "scenes" / "japan_1.jpg"
    closed = Image.open(path)
    closed.close()
    with pytest.raises(ImageError, match="PIL image: PIL cannot give its pixels"):
        ocr.read(closed)
    got = ocr.read_many([path, closed, path])
    assert isinstance(got[1], FailedImage) and got[1].source is None and "closed image" in got[1].error
    want = _lines(ocr.read(path))
    assert want and _lines(got[0]) == _lines(got[2]) == want


def test_one_input_instead_of_a_list_is_refused(ocr, shared_dir):
    # read_many("scan.jpg") read the path's characters as inputs, one failed image each.
    path = shared_dir / "images" / "scenes" / "japan_1.jpg"
    for one in (str(path), path, str(path.parent), path.read_bytes(), cv2.imread(str(path))):
        with pytest.raises(PtocrError, match="take a list of inputs, not one .*ocr.read"):
            ocr.read_many(one)
        with pytest.raises(PtocrError, match="take a list of inputs"):
            ocr.iter_many(one)  # at the call, not at the first result
        with pytest.raises(PtocrError, match="take a list of inputs"):
            next(BulkReader(ocr)(one))
    with pytest.raises(PtocrError, match=re.escape(f"not one str {str(path)!r}")):
        ocr.read_many(str(path))


def test_arrays_of_several_inputs_are_read_as_sequences(ocr, shared_dir):
    # A stack of images and an array of paths (a dataframe column's values) are several inputs.
    paths = [shared_dir / "images" / "scenes" / n for n in ("japan_1.jpg", "japan_1.jpg")]
    want = [ocr.read(p) for p in paths]
    img = cv2.imread(str(paths[0]))
    for many in (np.stack([img, img]), np.array([str(p) for p in paths])):
        got = ocr.read_many(many)
        assert [[line.text for line in r.lines] for r in got] == [[line.text for line in r.lines] for r in want]


def test_bad_batch_size(ocr):
    with pytest.raises(PtocrError, match="batch_size"):
        BulkReader(ocr, batch_size=0)


def test_uris(tmp_path, shared_dir):
    assert is_uri("s3://bucket/a.jpg") and is_uri("file:///x.png") and not is_uri("C:/a.jpg")
    assert not is_uri(Path("s3://x")) and not is_uri("relative/path.jpg")
    scene = shared_dir / "images" / "scenes" / "japan_1.jpg"
    pytest.importorskip("pyarrow")
    assert read_uri(scene.resolve().as_uri()) == scene.read_bytes()
    with pytest.raises(ImageError, match="cannot read"):
        read_uri((tmp_path / "missing.jpg").as_uri())


def test_device_input_on_meta(model_files):
    """The device copy as CUDA takes it, checked on the meta device: the batch lands on the
    model's device in its dtype (pinning applies to CUDA only)."""
    predictor = OCR(model_files["det"], model_files["rec"], device="meta", dtype="float16").rec
    x = predictor.device_input(np.zeros((2, 3, 48, 320), np.float32), pin_memory=True)
    assert x.device.type == "meta" and x.dtype == torch.float16 and x.shape == (2, 3, 48, 320)


def test_pipelines_without_iter_many_read_one_by_one(ocr, inputs, expected):
    """iter_pipeline: a pipeline with only ``read`` (no bulk steps) gives the same items."""

    class ReadOnly:
        read = staticmethod(ocr.read)

    got = list(iter_pipeline(ReadOnly(), inputs[:3]))
    assert isinstance(got[2], FailedImage) and got[2].error == str(expected[2])
    assert [_lines(r) for r in got[:2]] == [_lines(r) for r in expected[:2]]
