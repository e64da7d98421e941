"""Several training processes, as PaddleOCR's ``python -m paddle.distributed.launch --gpus 0,1,...
tools/train.py`` runs them: ``torchrun --nproc_per_node N -m ptocr train -c CONFIG.yml ...``.

torchrun's environment (``WORLD_SIZE`` > 1, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` / ``PORT``)
makes a distributed run; without it (or with one process) the trainer is the single-process one.
Facts from PaddleOCR's ``tools/train.py`` / ``tools/program.py``: ``Global.distributed`` is
overwritten with ``world size != 1``; ``use_sync_bn`` converts the network's BatchNorms before
the optimizer; the network runs in ``paddle.DataParallel(model, find_unused_parameters=
Global.find_unused_parameters)``, whose buffers (BatchNorm statistics) are synced once, at the
start, then each card keeps its own; only rank 0 evaluates and saves.
"""

from __future__ import annotations

import datetime
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ptocr.errors import PtocrError

__all__ = ["World", "current_world", "require_cuda", "init_process_group", "process_group", "sync_batchnorm",
           "data_parallel"]

log = logging.getLogger("ptocr.training")

# Only rank 0 evaluates (PaddleOCR's program.train); the others wait for it in the next step's
# gradient all-reduce, so a long evaluation must not trip the collectives' timeout.
_TIMEOUT = datetime.timedelta(hours=4)
_TORCHRUN_KEYS = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """The process that logs to train.log, evaluates and writes the checkpoints."""
        return self.rank == 0


def current_world() -> World:
    """torchrun's environment; one process without it."""
    env = os.environ
    try:
        size = int(env.get("WORLD_SIZE", "1"))
        if size <= 1:
            return World()
        missing = [k for k in _TORCHRUN_KEYS if not env.get(k)]
        if missing:
            raise PtocrError(f"WORLD_SIZE={size} without {', '.join(missing)}: start several training processes "
                             "with torchrun --nproc_per_node N -m ptocr train -c CONFIG.yml")
        return World(int(env["RANK"]), int(env["LOCAL_RANK"]), size)
    except ValueError:
        raise PtocrError("WORLD_SIZE / RANK / LOCAL_RANK must be integers (as torchrun sets them)") from None


def require_cuda() -> None:
    """``Global.use_gpu``: a clear error where this torch has no CUDA device."""
    if not torch.cuda.is_available():
        raise PtocrError("Global.use_gpu is true but this torch has no CUDA device; set -o Global.use_gpu=false")


def init_process_group(world: World, use_gpu: bool) -> None:
    """Join the run's process group (NCCL on GPUs, gloo on CPUs), each process on the GPU of its
    LOCAL_RANK; nothing for one process or a group already joined."""
    if not world.distributed or dist.is_initialized():
        return
    if use_gpu:
        require_cuda()
        if world.local_rank >= torch.cuda.device_count():
            raise PtocrError(f"LOCAL_RANK {world.local_rank}: this machine has {torch.cuda.device_count()} GPUs "
                             "(torchrun --nproc_per_node at most that many)")
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group("nccl" if use_gpu else "gloo", timeout=_TIMEOUT)


@contextmanager
def process_group(world: World, use_gpu: bool):
    """:func:`init_process_group` for the block; the group it made is destroyed after."""
    started = world.distributed and not dist.is_initialized()
    init_process_group(world, use_gpu)
    try:
        yield
    finally:
        if started and dist.is_initialized():
            dist.destroy_process_group()


def sync_batchnorm(net: nn.Module, world: World, device: torch.device) -> nn.Module:
    """``Global.use_sync_bn``: the BatchNorms' batch statistics over all processes' batches."""
    if not world.distributed:  # one process's batch statistics are the whole batch's already
        log.info("Global.use_sync_bn: one process, its BatchNorms stay as they are")
        return net
    if device.type != "cuda":
        raise PtocrError("Global.use_sync_bn: torch's SyncBatchNorm runs on GPUs only (DistributedDataParallel "
                         "refuses it on CPU); set -o Global.use_sync_bn=false")
    log.info("convert_sync_batchnorm")
    return nn.SyncBatchNorm.convert_sync_batchnorm(net)


def data_parallel(net: nn.Module, world: World, device: torch.device, find_unused_parameters: bool) -> nn.Module:
    """The network in DistributedDataParallel (gradients averaged over the processes), or ``net``
    itself for one process. Buffers are not broadcast at every step: as Paddle's DataParallel,
    each process keeps its own BatchNorm statistics after the initial sync (rank 0's are saved)."""
    if not world.distributed:
        return net
    if not dist.is_initialized():  # ptocr.training.trainer.train joins it; Trainer.from_config alone does not
        raise PtocrError("several processes (torchrun): build the trainer inside "
                         "ptocr.training.distributed.process_group(current_world(), use_gpu)")
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=ids, find_unused_parameters=find_unused_parameters,
                                   broadcast_buffers=False)
