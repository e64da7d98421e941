"""ptocr.load: converted files and Paddle folders become predictors; bad files are refused."""

import json
import struct

import numpy as np
import pytest
from click.testing import CliRunner

import ptocr
from converter.cli import main as convert_main
from ptocr.errors import ModelFileError, PtocrError
from ptocr.predictors import ClsPredictor, DetPredictor, RecPredictor


@pytest.fixture(scope="module")
def converted(shared_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted")
    files = {}
    for task, folder in [("det", "ch_PP-OCRv4_det_infer"), ("rec", "ch_PP-OCRv4_rec_infer"),
                         ("cls", "ch_ppocr_mobile_v2.0_cls_infer")]:
        dst = out / f"{task}.safetensors"
        res = CliRunner().invoke(convert_main, ["--src", str(shared_dir / "paddle_models" / folder), "--dst", str(dst)])
        assert res.exit_code == 0, res.output
        files[task] = dst
    return files


def test_rec_reads_real_word_crops(converted, shared_dir):
    rec = ptocr.load(converted["rec"])
    assert isinstance(rec, RecPredictor)
    crops = sorted((shared_dir / "images/words/en").glob("*.png"))
    results = rec(crops)
    assert len(results) == len(crops)
    # The first English crop says JOINT (as PaddleOCR reads it); a single crop gives a single result.
    assert results[0][0] == "JOINT" and results[0][1] > 0.9
    # Same text alone; the score may differ in the last float bit (batched matmuls block differently).
    alone = rec(crops[0])
    assert alone[0] == results[0][0] and alone[1] == pytest.approx(results[0][1], rel=1e-6)


def test_det_finds_boxes_inside_the_image(converted, shared_dir):
    det = ptocr.load(converted["det"])
    assert isinstance(det, DetPredictor)
    image = shared_dir / "images/scenes/11.jpg"
    res = det(image)
    assert res.boxes.shape[1:] == (4, 2) and len(res.boxes) > 5
    assert (res.boxes >= 0).all() and (res.boxes[..., 0] <= 500).all() and (res.boxes[..., 1] <= 500).all()
    assert (res.scores >= 0.6).all()


def test_cls_labels_upright_and_turned_crops(converted, shared_dir):
    import cv2

    cls = ptocr.load(converted["cls"])
    assert isinstance(cls, ClsPredictor)
    crop = cv2.imread(str(shared_dir / "images/words/ch/word_2.jpg"))
    (up, s_up), (down, s_down) = cls([crop, cv2.rotate(crop, cv2.ROTATE_180)])
    assert (up, down) == ("0", "180") and min(s_up, s_down) > 0.9


def test_compile_wraps_the_optimized_model_and_compiles_lazily(converted):
    import torch

    plain, compiled = ptocr.load(converted["cls"]), ptocr.load(converted["cls"], compile=True)
    assert isinstance(compiled.model, torch._dynamo.eval_frame.OptimizedModule)
    # Compilation waits for the first call (its parity: tests/test_parity.py, compiled models).
    assert type(compiled.model._orig_mod) is type(plain.model)
    assert not isinstance(plain.model, torch._dynamo.eval_frame.OptimizedModule)


def test_shape_graphs_are_the_classifiers_default_and_an_opt_in_for_the_others(converted, shared_dir):
    """Opted in, a recognizer's repeated shape runs through its graph and reads the same text.
    Without, it and a detector replay their eager ops (equal bit for bit: tests/test_op_replay.py)."""
    import torch

    assert ptocr.load(converted["cls"]).model.shape_graphs.fused
    plain = ptocr.load(converted["rec"])
    assert not plain.model.shape_graphs.fused and not ptocr.load(converted["det"]).model.shape_graphs.fused
    graphs = ptocr.load(converted["rec"], shape_graphs=True)
    assert graphs.model.shape_graphs.fused
    graphs.model.shape_graphs.build_after = 1
    crops = sorted((shared_dir / "images/words/en").glob("*.png"))
    with torch.inference_mode():
        want, got = plain(crops), graphs(crops)
    assert len(graphs.model.shape_graphs) >= 1
    assert [t for t, _ in got] == [t for t, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-4)
    assert ptocr.load(converted["cls"], shape_graphs=False).model.shape_graphs is None
    with pytest.raises(PtocrError, match="shape_graphs is for one model"):
        ptocr.load("ch_PP-OCRv4", shape_graphs=True)


def test_paddle_folder_loads_directly(shared_dir, converted):
    a = ptocr.load(shared_dir / "paddle_models/ch_ppocr_mobile_v2.0_cls_infer")
    b = ptocr.load(converted["cls"])
    x = np.random.default_rng(0).integers(0, 255, (48, 150, 3), dtype=np.uint8)
    assert a(x)[0] == b(x)[0] and abs(a(x)[1] - b(x)[1]) < 1e-6


def test_hash_mismatch_is_refused(converted):
    with pytest.raises(ModelFileError, match="corrupt or tampered"):
        ptocr.load(converted["cls"], expected_sha256="0" * 64)


def test_corrupt_header_is_refused(converted, tmp_path):
    bad = tmp_path / "bad.safetensors"
    data = bytearray(converted["cls"].read_bytes())
    data[0:8] = struct.pack("<Q", 1 << 40)  # header length far beyond the file
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="not a readable safetensors"):
        ptocr.load(bad)


def _rewrite_config(src, dst, edit):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    embedded = json.loads(meta["ptocr"])
    edit(embedded["config"])
    meta["ptocr"] = json.dumps(embedded)
    save_file(tensors, str(dst), metadata=meta)


def test_unknown_architecture_component_is_a_clear_error(converted, tmp_path):
    dst = tmp_path / "alien.safetensors"
    _rewrite_config(converted["cls"], dst, lambda c: c["model"]["backbone"].update(name="AlienNet"))
    with pytest.raises(ModelFileError, match="no backbone named 'AlienNet'"):
        ptocr.load(dst)


def test_weights_that_do_not_fit_the_config_are_refused(converted, tmp_path):
    dst = tmp_path / "mismatch.safetensors"
    _rewrite_config(converted["cls"], dst, lambda c: c["model"]["head"].update(num_classes=4))
    with pytest.raises(ModelFileError, match="shape mismatch head.fc.weight"):
        ptocr.load(dst)


def test_foreign_safetensors_is_refused(tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ModelFileError, match="without ptocr metadata"):
        ptocr.load(path)


def test_unknown_name_is_a_clear_error_with_suggestions():
    with pytest.raises(PtocrError, match="neither a file, a folder nor a known model name"):
        ptocr.load("no_such_model")
    with pytest.raises(PtocrError, match="did you mean ch_PP-OCRv4_rec"):
        ptocr.load("ch_PP-OCRv4_recc")
