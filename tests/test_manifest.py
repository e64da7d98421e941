"""weights_manifest.json names only registered architectures and pins its sources."""

import hashlib
import json
from pathlib import Path

import pytest

from ptocr.architectures import ARCHITECTURES, TASKS

MANIFEST = json.loads((Path(__file__).resolve().parents[1] / "weights_manifest.json").read_text())


@pytest.mark.parametrize("name", sorted(MANIFEST["models"]))
def test_model_entries_are_well_formed(name):
    entry = MANIFEST["models"][name]
    assert entry["task"] in TASKS
    assert entry["architecture"] in ARCHITECTURES, f"{name}: unregistered architecture"
    assert ARCHITECTURES[entry["architecture"]]["task"] == entry["task"]
    assert len(entry["source"]["pdiparams_sha256"]) == 64
    if entry["task"] == "rec":
        assert (Path(__file__).resolve().parents[1] / "ptocr" / "dicts" / entry["dictionary"]).is_file()


def test_bundles_name_existing_models_of_the_right_task():
    for bundle, parts in MANIFEST["bundles"].items():
        for task, model in parts.items():
            assert MANIFEST["models"][model]["task"] == task, bundle


@pytest.mark.parametrize("name", sorted(MANIFEST["models"]))
def test_source_hash_matches_the_real_model(shared_dir, name):
    src = MANIFEST["models"][name]["source"]
    data = (shared_dir / "paddle_models" / src["folder"] / "inference.pdiparams").read_bytes()
    assert hashlib.sha256(data).hexdigest() == src["pdiparams_sha256"]
