"""A ``ptocr train`` checkpoint's three files are saved as a set: a save stopped at any step (a kill,
simulated by an exception at that step) leaves the previous complete set or the new one, which a
resume continues from and whose best metric ``ptocr eval`` prints with the model it evaluates;
never a model with another save's states."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import intra_op_threads
from safetensors.torch import load_file
from test_train_cli import _rec_config, _write

from ptocr import cli
from ptocr.checkpoint import file_sha256
from ptocr.errors import PtocrError
from ptocr.training import train_state, trainer as trainer_module
from ptocr.training.train_state import committed, load_states, model_file, saved_best
from ptocr.training.trainer import Trainer

NEW_BEST = {"acc": 0.5, "best_epoch": 2}


class Killed(BaseException):
    """Stands for the process being killed at that step."""


@pytest.fixture(autouse=True)
def one_thread():
    with intra_op_threads(1):
        yield


@pytest.fixture
def trained(shared_dir, tmp_path):
    """(config, trainer, name): a one-epoch run, so ``out/latest`` is epoch 1, the trainer's weight
    ``name`` then changed so that a second save is told apart from the first."""
    config = _rec_config(shared_dir, tmp_path)
    config["Global"].update(epoch_num=1, eval_batch_step=[0, 100])
    trainer = Trainer.from_config(config)
    trainer.run()
    name, weight = next(trainer.recognizer.named_parameters())
    with torch.no_grad():
        weight.add_(1.0)
    torch.rand(1)  # and the random state saved with it: each of the set's files is new
    return config, trainer, name


def _fail_at(monkeypatch, target, name: str, nth: int) -> None:
    calls = {"n": 0}
    real = getattr(target, name)

    def step(*a, **k):
        calls["n"] += 1
        if calls["n"] == nth:
            raise Killed()
        return real(*a, **k)

    monkeypatch.setattr(target, name, step)


# Steps of the second save of ``latest`` (a recognizer: its model file has a .config.json and a
# .dict.txt): the staged writes before the commit, then the renames (tensors, config, dictionary,
# model, JSON). -> whether the new set is the checkpoint after a kill there.
KILLS = [("write_model", 1, False), ("write_atomically", 1, False),
         ("_move", 1, True), ("_move", 2, True), ("_move", 3, True), ("_move", 4, True), ("_move", 5, True)]


@pytest.mark.parametrize("step,nth,new", KILLS, ids=[f"{s}{n}" for s, n, _ in KILLS])
def test_a_kill_at_any_step_of_a_save_leaves_a_set_to_resume(trained, tmp_path, monkeypatch, step, nth, new):
    config, trainer, name = trained
    out = tmp_path / "out"
    prefix = out / "latest"
    old_record = json.loads((out / "latest.states.json").read_text(encoding="utf-8"))
    old_weight = load_file(str(out / "latest.safetensors"))[name]
    if step == "write_model":
        _fail_at(monkeypatch, trainer_module, "save_model", nth)
    elif step == "write_atomically":  # the staged JSON: the commit
        _fail_at(monkeypatch, train_state, "write_atomically", nth)
    else:
        _fail_at(monkeypatch, train_state, step, nth)
    with pytest.raises(Killed):
        trainer.save("latest", 2, 2, dict(NEW_BEST))
    monkeypatch.undo()

    record, paths = committed(prefix)
    assert record["epoch"] == (2 if new else 1)
    assert saved_best(prefix) == (NEW_BEST if new else old_record["best_model_dict"])
    # The model resumed / evaluated is the one the record names, checked by its sha256.
    assert model_file(prefix) == paths["model"] and file_sha256(paths["model"]) == record["model_sha256"]
    weight = load_file(str(paths["model"]))[name]
    assert torch.equal(weight, old_weight + 1.0 if new else old_weight)
    if not new:  # stopped before the commit: nothing staged is left behind
        assert not list(out.glob("*.next.*")) and not list(out.glob(".latest*"))
    # A real kill runs no cleanup: the temporaries of the writes it stopped stay, and the next save removes them
    # (another checkpoint's, or a file only named alike, it leaves).
    leftovers = [out / f".latest.next.{name}.{tag}.tmp" for name, tag in (
        ("safetensors", "k1ll3d_a"), ("config.json", "x2"), ("dict.txt", "y3"), ("states.safetensors", "z4"),
        ("states.json", "w5"))]
    others = [out / ".best_accuracy.next.safetensors.abc123.tmp", out / ".latest.next.safetensors.notes",
              out / ".latest.next.safetensors.a.b.tmp"]
    for path in leftovers + others:
        path.write_bytes(b"partial")

    # A resume continues from that set, its first save finishing or clearing the interrupted one.
    again = Trainer.from_config(config, [f"Global.checkpoints={prefix}", "Global.epoch_num=3"])
    assert load_states(prefix)[0]["epoch"] == record["epoch"]
    result = again.run()
    assert result["global_step"] == record["global_step"] + 3 - record["epoch"]
    assert set(out.glob("*.next.*")) == set(others)  # the staged files and their temporaries gone, not these
    done = json.loads((out / "latest.states.json").read_text(encoding="utf-8"))
    assert done["epoch"] == 3 and file_sha256(out / "latest.safetensors") == done["model_sha256"]
    assert file_sha256(out / "latest.states.safetensors") == done["tensors_sha256"]
    assert (out / "latest.config.json").is_file() and (out / "latest.dict.txt").is_file()


def _eval(config_path, *overrides) -> str:
    run = CliRunner().invoke(cli.main, ["eval", "-c", config_path, "-o", *overrides])
    assert run.exit_code == 0, run.output
    return run.output


def _metric_in_ckpt(output: str) -> dict:
    if "metric in ckpt" not in output:
        return {}
    block = output.split("metric in ckpt ***************", 1)[1].split("metric eval", 1)[0]
    return {k: float(v) for k, v in re.findall(r"INFO: (\w+):([-0-9.e]+)\n", block)}


def test_eval_prints_the_metric_of_the_model_it_evaluates(trained, tmp_path, monkeypatch):
    config, trainer, _ = trained
    out = tmp_path / "out"
    path = _write(config, tmp_path / "rec.yml")
    # Killed after the new model was renamed into place, before its JSON was: the new set.
    _fail_at(monkeypatch, train_state, "_move", 5)
    with pytest.raises(Killed):
        trainer.save("latest", 2, 2, dict(NEW_BEST))
    monkeypatch.undo()
    assert json.loads((out / "latest.states.json").read_text(encoding="utf-8"))["epoch"] == 1  # the old JSON
    assert _metric_in_ckpt(_eval(path, f"Global.checkpoints={out / 'latest'}")) == NEW_BEST

    # A model file that is not the one the states were saved with (replaced by hand, or an older
    # save's): evaluated, without another model's metric.
    (out / "latest.next.states.json").unlink()
    old = json.loads((out / "latest.states.json").read_text(encoding="utf-8"))
    (out / "latest.states.json").write_text(json.dumps({**old, "best_model_dict": {"acc": 0.25}}), encoding="utf-8")
    assert saved_best(out / "latest") == {}
    output = _eval(path, f"Global.checkpoints={out / 'latest'}")
    assert "metric in ckpt" not in output and "metric eval" in output


def test_the_metric_in_ckpt_needs_only_the_model_and_a_record_of_it(trained, tmp_path, monkeypatch):
    """'metric in ckpt' is the metric of the first record (the staged JSON's, then the final one's)
    naming the sha256 of the model evaluated: the optimizer's tensors are for resuming only."""
    config, trainer, _ = trained
    out = tmp_path / "out"
    path = _write(config, tmp_path / "rec.yml")
    recorded = json.loads((out / "latest.states.json").read_text(encoding="utf-8"))["best_model_dict"]
    (out / "latest.states.safetensors").unlink()
    assert saved_best(out / "latest") == recorded
    assert _metric_in_ckpt(_eval(path, f"Global.checkpoints={out / 'latest'}")) == pytest.approx(recorded)

    # A save killed before its JSON was renamed into place, the tensors then removed: no complete
    # set, the final model file is the new one, whose record is the staged JSON.
    _fail_at(monkeypatch, train_state, "_move", 5)
    with pytest.raises(Killed):
        trainer.save("latest", 2, 2, dict(NEW_BEST))
    monkeypatch.undo()
    (out / "latest.states.safetensors").unlink()
    with pytest.raises(PtocrError, match="states.safetensors is missing"):
        committed(out / "latest")
    assert saved_best(out / "latest") == NEW_BEST
    assert _metric_in_ckpt(_eval(path, f"Global.checkpoints={out / 'latest'}")) == NEW_BEST


def _hashed(monkeypatch) -> list:
    """The paths train_state hashes, as they are hashed."""
    calls, real = [], train_state.file_sha256

    def counting(path):
        calls.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(train_state, "file_sha256", counting)
    return calls


def test_a_save_and_an_eval_hash_each_file_once(trained, tmp_path, monkeypatch):
    config, trainer, _ = trained
    out = tmp_path / "out"
    calls = _hashed(monkeypatch)
    trainer.save("latest", 2, 2, dict(NEW_BEST))
    # The tensors before they are renamed to the staged name, the model (save_model's own sum aside); the
    # renames into place hash neither again.
    assert len(calls) == 2 and calls[0].startswith(".latest.next.states.safetensors.") and \
        calls[1] == "latest.next.safetensors"
    calls.clear()
    _eval(_write(config, tmp_path / "rec.yml"), f"Global.checkpoints={out / 'latest'}")
    assert sorted(calls) == ["latest.safetensors", "latest.states.safetensors"]  # the model once more: as loaded


def test_eval_while_a_save_renames_the_model_it_chose(trained, tmp_path, monkeypatch):
    """A save's renames racing an evaluation: the staged model chosen, then renamed into place before
    it is read, is found again (once) under its final name, checked by its sha256."""
    config, trainer, name = trained
    out = tmp_path / "out"
    _fail_at(monkeypatch, train_state, "_move", 4)  # killed before the new model was renamed into place
    with pytest.raises(Killed):
        trainer.save("latest", 2, 2, dict(NEW_BEST))
    monkeypatch.undo()
    assert committed(out / "latest")[1]["model"] == out / "latest.next.safetensors"
    found, real = [], train_state.resolve

    def resolve_then_settle(prefix):
        found.append(real(prefix))
        if len(found) == 1:  # the save finishes between the choice and the read
            train_state._settle(prefix)
        return found[-1]

    monkeypatch.setattr(trainer_module, "resolve", resolve_then_settle)
    output = _eval(_write(config, tmp_path / "rec.yml"), f"Global.checkpoints={out / 'latest'}")
    assert _metric_in_ckpt(output) == NEW_BEST and "metric eval" in output
    assert [f.path.name for f in found] == ["latest.next.safetensors", "latest.safetensors"]
    assert found[0].sha256 == found[1].sha256 == file_sha256(out / "latest.safetensors")


def test_a_file_renamed_away_while_it_is_hashed_is_not_an_error(trained, tmp_path, monkeypatch):
    """committed() looks for the staged model, which a save renames before it is read: not an
    OSError out of the reader, the set found under the final name."""
    _, trainer, _ = trained
    out = tmp_path / "out"
    _fail_at(monkeypatch, train_state, "_move", 4)
    with pytest.raises(Killed):
        trainer.save("latest", 2, 2, dict(NEW_BEST))
    monkeypatch.undo()
    staged, real = out / "latest.next.safetensors", train_state.file_sha256

    def renamed_first(path):
        if Path(path) == staged and staged.exists():
            staged.replace(out / "latest.safetensors")
        return real(path)

    monkeypatch.setattr(train_state, "file_sha256", renamed_first)
    record, paths = committed(out / "latest")
    assert record["epoch"] == 2 and paths["model"] == out / "latest.safetensors"
