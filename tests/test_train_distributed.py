"""``torchrun --nproc_per_node 2 -m ptocr train``: PaddleOCR's ``paddle.distributed.launch``
training, here on CPU with gloo (2 processes started by the test, one thread each).

The en_number v2.0 CRNN of tests/test_train_cli.py on 8 word crops. A launcher script
(``_LAUNCH``) runs ``ptocr train`` as the module does, recording on each rank the Train indices
it read, the files the trainer wrote and its final weights.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, intra_op_threads
from safetensors.torch import load_file
from test_train_cli import WORDS, _rec_config, _write
from torch.nn.modules.batchnorm import _BatchNorm

from ptocr.errors import PtocrError
from ptocr.training.data import DistributedBatchSampler
from ptocr.training.distributed import World, sync_batchnorm
from ptocr.training.trainer import Trainer

# Eight crops (the last four's texts made up: only the gradients' arithmetic is checked on them).
CROPS = {**WORDS, "en2/word_116.png": "FOUR", "en2/word_336.png": "TWO", "en2/word_401.png": "ONE",
         "en2/word_461.png": "SIX"}

_LAUNCH = r'''
import json, os, sys
from pathlib import Path

import torch
from safetensors.torch import save_file

if os.environ.get("FROZEN_BN"):  # batch statistics out of the arithmetic: BatchNorms use their running ones
    from torch.nn.modules.batchnorm import _BatchNorm
    _BatchNorm.train = lambda self, mode=True: torch.nn.Module.train(self, False)

from ptocr.training import data, trainer

if os.environ.get("UNUSED_PARAMETER"):  # a parameter no step uses, as a frozen branch's would be
    _build = trainer.build_model
    def build_model(*args, **kwargs):
        net = _build(*args, **kwargs)
        net.head.unused = torch.nn.Linear(1, 1)
        return net
    trainer.build_model = build_model

rank, dump = os.environ.get("RANK", "0"), Path(os.environ["DUMP_DIR"])
seen, writes = {}, []
_getitem = data.RecDataset.__getitem__
def getitem(self, index):
    seen.setdefault(id(self), []).append(int(index))
    return _getitem(self, index)
data.RecDataset.__getitem__ = getitem
for name, where in (("save_model", 1), ("write_atomically", 0)):  # the argument that is the file
    def record(*args, _f=getattr(trainer, name), _at=where, **kwargs):
        writes.append(str(args[_at]))
        return _f(*args, **kwargs)
    setattr(trainer, name, record)
_run = trainer.Trainer.run
def run(self, *args):
    out = _run(self, *args)
    save_file({k: v.contiguous() for k, v in self.recognizer.state_dict().items()}, str(dump / f"rank{rank}.safetensors"))
    (dump / f"rank{rank}.json").write_text(json.dumps({"train": seen.get(id(self.train_loader.dataset), []),
                                                       "writes": writes}))
    return out
trainer.Trainer.run = run

from ptocr.cli import main
main(sys.argv[1:], prog_name="ptocr")
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(dump: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", DUMP_DIR=str(dump), **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _torchrun(args, dump: Path, ok: bool = True, **extra) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --nproc_per_node 2 ARGS`` on CPU, checked to succeed (``ok``)."""
    dump.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), *args]
    run = subprocess.run(cmd, env=_env(dump, **extra), capture_output=True, text=True, timeout=900, cwd=REPO)
    assert (run.returncode == 0) == ok, run.stdout[-4000:] + run.stderr[-4000:]
    return run


def _config(shared_dir, tmp_path, **loader) -> dict:
    """test_train_cli's en_number fine-tune over CROPS, 2 a card."""
    config = _rec_config(shared_dir, tmp_path)
    label = tmp_path / "train.txt"
    label.write_text("".join(f"{p}\t{t}\n" for p, t in CROPS.items()), encoding="utf-8")
    config["Global"].update(epoch_num=2, save_epoch_step=1, eval_batch_step=[0, 2])
    config["Train"]["loader"].update(batch_size_per_card=2, **loader)
    return config


def _paddle_batches(n, batch_size, replicas, rank, shuffle, drop_last, epoch) -> list[list[int]]:
    sampler = pytest.importorskip("paddle.io").DistributedBatchSampler(
        range(n), batch_size, num_replicas=replicas, rank=rank, shuffle=shuffle, drop_last=drop_last)
    sampler.set_epoch(epoch)
    return [list(map(int, b)) for b in sampler]


def test_the_sampler_is_paddles():
    """Paddle's installed DistributedBatchSampler: padding, the epoch's shuffle, the split by blocks."""
    for n, bs, replicas, shuffle, drop_last, epoch in [(8, 2, 2, True, True, 0), (8, 2, 2, True, True, 1),
                                                       (11, 3, 2, True, False, 5), (13, 2, 4, False, False, 0),
                                                       (5, 4, 3, True, False, 2), (7, 3, 3, False, True, 0),
                                                       (1, 2, 2, False, False, 0), (9, 2, 1, True, False, 3)]:
        for rank in range(replicas):
            ours = DistributedBatchSampler(n, bs, replicas, rank, shuffle, drop_last)
            ours.set_epoch(epoch)
            batches = list(ours)
            assert batches == _paddle_batches(n, bs, replicas, rank, shuffle, drop_last, epoch), (n, bs, replicas, rank)
            assert len(ours) == len(batches)


def test_two_processes_train_as_paddle_launch_and_resume(shared_dir, tmp_path):
    config = _write(_config(shared_dir, tmp_path, shuffle=True), tmp_path / "rec.yml")
    launch = tmp_path / "launch.py"
    launch.write_text(_LAUNCH, encoding="utf-8")
    out, dump = tmp_path / "out", tmp_path / "dump"
    _torchrun([str(launch), "train", "-c", config], dump)

    # Every rank read its own share of each epoch, as Paddle's sampler splits the shuffled indices.
    seen = [json.loads((dump / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank in (0, 1):
        want = [i for epoch in (0, 1) for b in _paddle_batches(8, 2, 2, rank, True, True, epoch) for i in b]
        assert seen[rank]["train"] == want
    for epoch in (0, 1):
        share = [set(s["train"][4 * epoch:4 * epoch + 4]) for s in seen]
        assert not share[0] & share[1] and share[0] | share[1] == set(range(8))

    # The ranks end with the same weights, which rank 0 saved; only rank 0 wrote files and logged.
    weights = [load_file(str(dump / f"rank{r}.safetensors")) for r in (0, 1)]
    saved = load_file(str(out / "latest.safetensors"))
    params = [k for k in weights[0] if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert params and all(torch.equal(weights[0][k], weights[1][k]) for k in params)
    assert all(torch.equal(weights[0][k], saved[k]) for k in weights[0])
    assert seen[1]["writes"] == [] and any(Path(w).name.startswith("latest.") for w in seen[0]["writes"])
    log = (out / "train.log").read_text(encoding="utf-8")
    assert log.count("global_step:") == 4 and log.count("cur metric, acc:") == 2 and "2 processes" in log
    assert (out / "config.yml").is_file() and (out / "iter_epoch_1.states.json").is_file()

    # Resumed under torchrun (the module itself) from epoch 1: epoch 2 at global step 3, ending
    # where the straight run did.
    again = tmp_path / "again"
    _torchrun(["-m", "ptocr", "train", "-c", config, "-o", f"Global.checkpoints={out / 'iter_epoch_1'}",
               f"Global.save_model_dir={again}"], tmp_path / "dump2")
    log = (again / "train.log").read_text(encoding="utf-8")
    assert "global_step: 1," not in log and re.search(r"epoch: \[2/2\], global_step: 3,", log)
    resumed = load_file(str(again / "latest.safetensors"))
    assert all(torch.equal(saved[k], resumed[k]) for k in params)


def test_two_processes_average_the_gradients_of_one_batch(shared_dir, tmp_path, monkeypatch):
    """2 ranks x 2 samples = 1 process x 4 samples, step by step: DistributedDataParallel's mean of
    the ranks' gradients (SGD; BatchNorms on their running statistics, the same whatever the split)."""
    config = _config(shared_dir, tmp_path, shuffle=False)
    config["Global"].update(epoch_num=1, cal_metric_during_train=False)
    config["Optimizer"] = {"name": "Momentum", "momentum": 0.9, "lr": {"learning_rate": 0.05},
                           "regularizer": {"name": "L2", "factor": 1.0e-05}}
    config.pop("Eval")
    launch = tmp_path / "launch.py"
    launch.write_text(_LAUNCH, encoding="utf-8")
    _torchrun([str(launch), "train", "-c", _write(config, tmp_path / "rec.yml")], tmp_path / "dump", FROZEN_BN="1")
    two = load_file(str(tmp_path / "dump" / "rank0.safetensors"))

    monkeypatch.setattr(_BatchNorm, "train", lambda self, mode=True: torch.nn.Module.train(self, False))
    config["Global"]["save_model_dir"] = str(tmp_path / "one")
    config["Train"]["loader"]["batch_size_per_card"] = 4
    with intra_op_threads(1):
        trainer = Trainer.from_config(config)
        before = {k: v.clone() for k, v in trainer.recognizer.state_dict().items()}
        trainer.run()
    one = trainer.recognizer.state_dict()
    assert one.keys() == two.keys() and any(not torch.equal(before[k], one[k]) for k in one)
    # float32 rounding (the reductions' order) through the deep network: to 1e-4 of each tensor's
    # update, where a gradient that is not the 4 samples' mean would be off by the update's size.
    for k, v in one.items():
        moved = (v - before[k]).abs().max().item()
        assert (two[k] - v).abs().max().item() <= 1e-4 * moved + 1e-7, k


def test_sync_bn_on_cpu_is_refused_and_one_process_keeps_its_batchnorms():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    with pytest.raises(PtocrError, match="use_sync_bn: torch's SyncBatchNorm runs on GPUs only"):
        sync_batchnorm(net, World(rank=0, local_rank=0, size=2), torch.device("cpu"))
    assert sync_batchnorm(net, World(), torch.device("cpu")) is net


def test_a_parameter_without_gradient_names_find_unused_parameters(shared_dir, tmp_path):
    config = _config(shared_dir, tmp_path)
    config["Global"].update(epoch_num=1)
    config.pop("Eval")
    launch = tmp_path / "launch.py"
    launch.write_text(_LAUNCH, encoding="utf-8")
    run = _torchrun([str(launch), "train", "-c", _write(config, tmp_path / "rec.yml")], tmp_path / "dump", ok=False,
                    UNUSED_PARAMETER="1")
    assert "ptocr: error: some parameters of the network get no gradient in a step" in run.stderr
    assert "-o Global.find_unused_parameters=true" in run.stderr
