"""``ptocr train``: PaddleOCR's ``tools/train.py`` for ptocr networks, from a PaddleOCR config.

::

    from ptocr.training.trainer import train
    train("ch_PP-OCRv4_rec.yml", ["Global.pretrained_model=ch_PP-OCRv4_rec", "Global.use_gpu=false"])

Reads the config (:mod:`~ptocr.training.config`), picks the architecture
(:mod:`~ptocr.training.architecture`), builds the datasets and loaders
(:mod:`~ptocr.training.loaders`), the loss, the network, the post-processing and the metric
(:mod:`~ptocr.training.components`) and ``create_optimizer``'s recipe, then runs PaddleOCR's loop (``tools/program.py`` ``train``): a step per batch
(forward, loss, backward, clip, update, LR step), its log line every ``print_batch_step``,
an evaluation every ``eval_batch_step`` ``[start, every]`` saving ``best_accuracy`` when the main
indicator is at least the best so far, ``latest`` after every epoch and ``iter_epoch_N`` every
``save_epoch_step`` epochs (:mod:`~ptocr.training.train_state`: a model file ``ptocr.load``
reads, and the optimizer / scheduler / step state beside it). ``Global.checkpoints`` resumes as
PaddleOCR does: at the epoch after the saved one, at its global step, with its best metric.
Started by torchrun, each process trains on its share of the Train batches in
DistributedDataParallel (:mod:`~ptocr.training.distributed`); rank 0 logs, evaluates and saves.

``evaluate_config(config, overrides)`` (``ptocr eval``) is PaddleOCR's ``tools/eval.py``: the Eval
data, the network of ``Global.checkpoints`` / ``pretrained_model``, scored by the evaluation the
loop runs (:mod:`~ptocr.training.evaluation`).
"""

from __future__ import annotations

import collections
import datetime
import logging
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from ptocr.api import save_model
from ptocr.atomic import write_atomically
from ptocr.dictionary import Dictionary
from ptocr.errors import ModelFileError, PtocrError
from ptocr.training.amp import MixedPrecision, to_float32
from ptocr.training.architecture import ConfigArchitecture, architecture_for
from ptocr.training.components import (GLOBAL_DEFAULTS, build_dictionary, build_loss, build_metric, build_model,
                                       build_postprocess, guard_nan, select_device, set_seed, wrap_multihead)
from ptocr.training.config import EVAL_REQUIRED, read_config
from ptocr.training.data import DistributedBatchSampler
from ptocr.training.distributed import World, current_world, data_parallel, process_group, sync_batchnorm
from ptocr.training.evaluation import Scorer, run_evaluation, to_device
from ptocr.training.labels import CTCLabelEncode
from ptocr.training.loaders import DataSettings, build_dataset, build_loader
from ptocr.training.metrics import RecMetric
from ptocr.training.multihead import MultiHeadTraining, MultiLoss
from ptocr.training.optimizer import create_optimizer
from ptocr.training.train_state import load_checkpoint, optimizer_state, resolve, restore_rng, save_checkpoint

__all__ = ["train", "Trainer", "evaluate_config"]

log = logging.getLogger("ptocr.training")


# ---------------------------------------------------------------------------------------------
# Logging (PaddleOCR's TrainingStats: medians over log_smooth_window)
# ---------------------------------------------------------------------------------------------
class TrainingStats:
    def __init__(self, window: int):
        self.values: dict[str, collections.deque] = {}
        self.window = window

    def update(self, stats: dict) -> None:
        for k, v in stats.items():
            self.values.setdefault(k, collections.deque(maxlen=self.window)).append(float(v))

    def get(self) -> dict[str, float]:
        return {k: round(float(np.median(v)), 6) for k, v in self.values.items()}

    def log(self) -> str:
        return ", ".join(f"{k}: {v:x<6f}" for k, v in self.get().items())


def _log_ranks(value) -> set[int]:
    """Global.log_ranks: PaddleOCR's "0,1" (a string), an int or a list."""
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
    try:
        return {int(i) for i in items}
    except (TypeError, ValueError):
        raise PtocrError(f"Global.log_ranks {value!r}: the ranks that log, e.g. \"0\" or \"0,1\"") from None


class TrainLog(logging.Handler):
    """``save_model_dir/train.log``, opened by :meth:`start` when training begins (its folder made
    then): a run refused before that (a bad config, data or checkpoint) leaves no log and no folder
    behind. What was logged before ``start`` is held and written first, with its own times."""

    def __init__(self, path: Path):
        super().__init__()
        self.path, self.held, self.file = path, [], None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.file is None:  # its message fixed now: its arguments may change before it is written
                record.msg, record.args = record.getMessage(), None
                self.held.append(record)
            else:
                self.file.handle(record)
        except Exception:  # as logging's handlers: a bad record (its arguments) is reported, never raised
            self.handleError(record)

    def start(self) -> None:
        if self.file is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = logging.FileHandler(self.path, encoding="utf-8")
        self.file.setFormatter(self.formatter)
        for record in self.held:
            self.file.handle(record)
        self.held.clear()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        self.held.clear()
        super().close()


@contextmanager
def _log_to(save_model_dir: Path | None, world: World = World(), log_ranks="0"):
    """The ``ptocr.training`` logger to stdout and ``save_model_dir/train.log`` (None: stdout only) for
    the run; yields the :class:`TrainLog` (None without one), which writes once started. As
    PaddleOCR's get_logger: only rank 0 writes train.log; the ranks of ``log_ranks`` log at INFO,
    the others only errors."""
    run_level = logging.INFO if world.rank in _log_ranks(log_ranks) else logging.ERROR  # raises before any handler
    fmt = logging.Formatter("[%(asctime)s] ptocr %(levelname)s: %(message)s", "%Y/%m/%d %H:%M:%S")
    level, propagate = log.level, log.propagate
    handlers, train_log = [], None
    try:
        handlers.append(logging.StreamHandler(sys.stdout))
        if world.main and save_model_dir is not None:
            train_log = TrainLog(save_model_dir / "train.log")
            handlers.append(train_log)
        for h in handlers:
            h.setFormatter(fmt)
            log.addHandler(h)
        log.setLevel(run_level)
        log.propagate = False
        yield train_log
    finally:
        for h in handlers:
            log.removeHandler(h)
            h.close()
        log.setLevel(level)
        log.propagate = propagate


# ---------------------------------------------------------------------------------------------
# What train and eval build alike
# ---------------------------------------------------------------------------------------------
def _matched(config: dict) -> tuple[dict, ConfigArchitecture, Dictionary | None, CTCLabelEncode | None]:
    """(Global with tools/train.py's defaults, set into ``config``; the architecture; a
    recognizer's dictionary and CTC label encoder, else None)."""
    glob = {**GLOBAL_DEFAULTS, **{k: v for k, v in config["Global"].items() if v is not None}}
    config["Global"] = glob
    arch = architecture_for(config["Architecture"])
    if arch.task != "rec":
        return glob, arch, None, None
    dictionary = build_dictionary(glob)
    return glob, arch, dictionary, CTCLabelEncode(dictionary, int(glob["max_text_length"]))


def _class_count(dictionary: Dictionary | None, label_list) -> int | None:
    """The head's classes: a recognizer's dictionary's, a classifier's labels; None for det."""
    if dictionary is not None:
        return dictionary.num_classes
    return None if label_list is None else len(label_list)


@dataclass
class Trainer:
    """Everything ``train`` builds from a config; ``run()`` trains."""

    config: dict
    arch: ConfigArchitecture
    device: torch.device
    net: nn.Module
    dictionary: Dictionary | None
    train_loader: object
    eval_loader: object
    criterion: nn.Module
    recipe: object
    post: object
    metric: object
    label_list: list | None = None
    resume_state: tuple | None = None  # (record, tensors) of Global.checkpoints (load_checkpoint)
    world: World = World()
    model: nn.Module | None = None  # what a step runs: ``net`` in DistributedDataParallel, or ``net``
    precision: MixedPrecision = MixedPrecision()  # Global.use_amp and its settings
    scaler: torch.amp.GradScaler | None = None  # with use_amp, PaddleOCR's GradScaler

    @classmethod
    def from_config(cls, config, overrides=()) -> Trainer:
        return cls._build(read_config(config, overrides))

    @classmethod
    def _build(cls, config: dict) -> Trainer:
        """From a config :func:`read_config` gave (checked, overrides applied)."""
        glob, arch, dictionary, encoder = _matched(config)
        world = current_world()  # Global.distributed is this, as tools/program.py overwrites it
        device = select_device(glob)
        set_seed(int(glob["seed"]))  # the same on every rank, as tools/train.py
        label_list = None
        criterion = build_loss(config["Loss"], arch)
        settings = DataSettings(arch.task, encoder, arch.class_dim, int(glob["seed"]),
                                multi_label=isinstance(criterion, MultiLoss), glob=glob)
        train_set = build_dataset(config["Train"], "Train", settings)
        train_loader = build_loader(config["Train"], "Train", train_set, settings.seed, world.size, world.rank)
        if len(train_loader) == 0:
            unusable = len(getattr(train_set, "invalid", ()))  # label lines redrawn when drawn
            count = f"{len(train_set)} label lines ({unusable} unusable)" if unusable else f"{len(train_set)} samples"
            share = f" over {world.size} processes" if world.size > 1 else ""
            raise PtocrError(f"no batches in the train data: {count}, batch_size_per_card "
                             f"{config['Train'].get('loader', {}).get('batch_size_per_card')} with drop_last{share}")
        eval_loader = None
        if config.get("Eval") and world.main:  # rank 0 alone evaluates
            eval_loader = build_loader(config["Eval"], "Eval", build_dataset(config["Eval"], "Eval", settings))
        if arch.task == "cls":
            label_list = train_set.encode.label_list
        num_classes = _class_count(dictionary, label_list)
        post = build_postprocess(config["PostProcess"], arch.task, dictionary, label_list)
        metric = build_metric(config["Metric"], arch.task)
        # The record, tensors and model of one complete set, each file hashed once.
        record, tensors, chosen = load_checkpoint(glob["checkpoints"]) if glob.get("checkpoints") else (None,) * 3
        resume_state = None if record is None else (record, tensors)
        if resume_state is not None and resume_state[0].get("architecture") != arch.name:
            raise PtocrError(f"Global.checkpoints {glob['checkpoints']}: a {resume_state[0].get('architecture')} "
                             f"checkpoint, the config's Architecture is {arch.name}")
        net = build_model(arch, glob, num_classes, dictionary, checkpoint=chosen)
        if resume_state is not None and int(resume_state[0]["epoch"]) >= int(glob["epoch_num"]):
            done = int(resume_state[0]["epoch"])  # the loop would run epochs done + 1 to epoch_num: none
            raise PtocrError(f"Global.checkpoints {glob['checkpoints']}: the checkpoint is at epoch {done}; "
                             f"Global.epoch_num {glob['epoch_num']} leaves nothing to train (give epoch_num > {done})")
        if arch.fix_nan:
            guard_nan(net)
        if isinstance(criterion, MultiLoss):
            net = wrap_multihead(net, arch, glob)
        elif arch.gtc_head is not None:
            log.warning("Loss %s: MultiHead's %s branch is not trained (Loss MultiLoss trains it)",
                        config["Loss"].get("name"), next(iter(arch.gtc_head)))
        if glob.get("use_sync_bn"):  # before the optimizer, as tools/train.py
            net = sync_batchnorm(net, world, device)
        net = net.to(device).train()
        recipe = create_optimizer(net, config, epochs=int(glob["epoch_num"]), steps_per_epoch=len(train_loader))
        model = data_parallel(net, world, device, bool(glob.get("find_unused_parameters")))
        precision = MixedPrecision.from_global(glob).on(device)
        return cls(config, arch, device, net, dictionary, train_loader, eval_loader, criterion, recipe, post, metric,
                   label_list, resume_state, world, model, precision, precision.scaler(device))

    @property
    def multihead(self) -> bool:
        return isinstance(self.net, MultiHeadTraining)

    @property
    def recognizer(self) -> nn.Module:
        """The network ``ptocr.save_model`` writes (without MultiHead's training-only branch)."""
        return self.net.net if self.multihead else self.net

    # -- evaluation ---------------------------------------------------------------------------
    @property
    def scorer(self) -> Scorer:
        return Scorer(self.arch.task, self.post, self.dictionary, self.label_list)

    def evaluate(self) -> dict[str, float]:
        """tools/program.py ``eval``: the metric over the Eval loader, and fps."""
        result = run_evaluation(self.net, self.eval_loader, self.device, self.scorer, self.metric, self.precision)
        self.net.train()
        return result

    # -- checkpoints ----------------------------------------------------------------------------
    def save(self, prefix: str, epoch: int, global_step: int, best: dict) -> None:
        if not self.world.main:  # the ranks hold the same weights: rank 0 writes them
            return
        path = Path(self.config["Global"]["save_model_dir"]) / prefix
        info = {"epoch": epoch, "global_step": global_step, "best_model_dict": best,
                "architecture": self.arch.name}
        branch = {f"branch.{k}": v for k, v in self.net.branch.state_dict().items()} if self.multihead else {}

        def write_model(dst: Path) -> None:
            save_model(self.recognizer, dst, dictionary=self.dictionary, force=True,
                       use_space_char=None if self.dictionary is None else self.dictionary.use_space_char)

        # The model and its states as one set: a kill mid-save leaves the previous set or this one.
        save_checkpoint(path, write_model, self.recipe.optimizer, self.recipe.scheduler, info, branch)
        log.info("save model in %s", path)

    def resume(self) -> tuple[int, int, dict]:
        """(start epoch, global step, best metric) from Global.checkpoints; (1, 0, {}) without."""
        prefix = self.config["Global"].get("checkpoints")
        if self.resume_state is None:
            return 1, 0, {}
        record, tensors = self.resume_state
        try:
            self.recipe.optimizer.load_state_dict(optimizer_state(record, tensors))
        except (ValueError, KeyError) as e:
            raise PtocrError(f"Global.checkpoints {prefix}: its optimizer state does not fit this config's Optimizer "
                             f"({e})") from None
        self.recipe.scheduler.load_state_dict(record["scheduler"])
        if self.multihead:
            branch = {k.removeprefix("branch."): v for k, v in tensors.items() if k.startswith("branch.")}
            if not branch:
                raise PtocrError(f"Global.checkpoints {prefix}: no MultiHead GTC branch in it (trained without MultiLoss)")
            self.net.branch.load_state_dict(branch)
        restore_rng(record, tensors)
        log.info("resume from %s: epoch %d, global_step %d", prefix, record["epoch"], record["global_step"])
        return int(record["epoch"]) + 1, int(record["global_step"]), dict(record.get("best_model_dict") or {})

    # -- training -------------------------------------------------------------------------------
    def _train_metric(self, preds, batch) -> dict:
        if self.arch.task == "det":
            return {}
        probs = (preds["ctc"] if isinstance(preds, dict) else preds).softmax(-1).detach().float().cpu().numpy()
        metric = type(self.metric)() if self.arch.task == "cls" else RecMetric(self.metric.is_filter,
                                                                                self.metric.ignore_space)
        self.scorer(probs, {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}, metric)
        return metric.get_metric()

    def run(self, train_log: TrainLog | None = None) -> dict:
        """Train (the loop logs through the ``ptocr.training`` logger; :func:`train` sends it to
        stdout and ``save_model_dir/train.log``, ``train_log``, started here). The checkpoint's
        state is restored first: a refusal there writes nothing."""
        glob = self.config["Global"]
        save_dir = Path(glob["save_model_dir"])
        start = self.resume()
        if self.world.main:
            save_dir.mkdir(parents=True, exist_ok=True)
            if train_log is not None:
                train_log.start()
            write_atomically(save_dir / "config.yml", yaml.safe_dump(self.config, sort_keys=False, allow_unicode=True))
        return self._loop(glob, save_dir, start)

    def _eval_schedule(self, glob: dict) -> tuple[int, int]:
        step = glob["eval_batch_step"]
        if isinstance(step, (list, tuple)) and len(step) >= 2:
            return int(step[0]), int(step[1])
        return 0, int(step)

    def step(self, batch: dict) -> tuple[object, dict]:
        """One iteration, tools/program.py's: forward, loss, backward, then clip, update, LR step."""
        batch = to_device(batch, self.device)
        model = self.net if self.model is None else self.model
        try:
            with self.precision.autocast(self.device):
                preds = model(batch["image"], batch) if self.multihead else model(batch["image"])
        except RuntimeError as e:  # DistributedDataParallel: a parameter had no gradient last step
            if "find_unused_parameters" not in str(e):
                raise
            raise PtocrError("some parameters of the network get no gradient in a step (e.g. a frozen or unused "
                             "branch): set -o Global.find_unused_parameters=true, as PaddleOCR's DataParallel "
                             "needs") from None
        if self.precision.enabled:
            preds = to_float32(preds)  # the loss in float32, as PaddleOCR's
        losses = self.criterion(preds, batch)
        self.recipe.optimizer.zero_grad()
        self.precision.backward_and_step(losses["loss"], self.recipe, self.scaler)
        return preds, losses

    def _evaluate_and_keep_best(self, epoch: int, global_step: int, best: dict) -> None:
        current = self.evaluate()
        log.info("cur metric, %s", ", ".join(f"{k}: {v}" for k, v in current.items()))
        if current[self.metric.main_indicator] >= best[self.metric.main_indicator]:
            best.update(current)
            best["best_epoch"] = epoch
            self.save("best_accuracy", epoch, global_step, best)
        log.info("best metric, %s", ", ".join(f"{k}: {v}" for k, v in best.items()))

    def _loop(self, glob: dict, save_dir: Path, start: tuple[int, int, dict]) -> dict:
        epochs, print_step = int(glob["epoch_num"]), int(glob["print_batch_step"])
        start_epoch, global_step, best = start
        best = {self.metric.main_indicator: 0, **best}
        start_eval, every = self._eval_schedule(glob)
        stats = TrainingStats(int(glob["log_smooth_window"]))
        steps = len(self.train_loader)
        log.info("train %s (%s) on %s in %s: %d iterations an epoch, epochs %d to %d", self.arch.name,
                 self.arch.task, self.device, self.precision.describe(), steps, start_epoch, epochs)
        if self.world.distributed:
            log.info("%d processes, each on its share of the Train batches; rank 0 evaluates and saves",
                     self.world.size)
        if self.eval_loader is not None:
            log.info("after the %dth iteration, an evaluation is run every %d iterations", start_eval, every)
        samples, reader_cost, batch_cost, eta = 0, 0.0, 0.0, collections.deque(maxlen=50)
        sampler = getattr(self.train_loader, "batch_sampler", None)
        for epoch in range(start_epoch, epochs + 1):
            if isinstance(sampler, DistributedBatchSampler):
                # Paddle's sampler counts its passes from 0: epoch - 1 is that count in a straight
                # run, and keeps it in a resumed one (where Paddle's would restart at 0).
                sampler.set_epoch(epoch - 1)
            reader_start = time.time()
            for idx, batch in enumerate(self.train_loader):
                reader_cost += time.time() - reader_start
                lr = self.recipe.lr_at(self.recipe.scheduler.last_epoch)  # the LR this step runs at
                preds, losses = self.step(batch)
                if glob["cal_metric_during_train"] and epoch % int(glob["calc_epoch_interval"]) == 0:
                    stats.update(self._train_metric(preds, batch))
                spent = time.time() - reader_start
                batch_cost += spent
                eta.append(spent)
                global_step += 1
                samples += len(batch["image"])
                stats.update({k: v.detach().float().mean().item() for k, v in losses.items()})
                stats.update({"lr": lr})
                if global_step % print_step == 0 or idx >= steps - 1:
                    left = ((epochs + 1 - epoch) * steps - idx - 1) * float(np.mean(eta))
                    log.info("epoch: [%d/%d], global_step: %d, %s, avg_reader_cost: %.5f s, avg_batch_cost: %.5f s, "
                             "avg_samples: %s, ips: %.5f samples/s, eta: %s", epoch, epochs, global_step, stats.log(),
                             reader_cost / print_step, batch_cost / print_step, samples / print_step,
                             samples / batch_cost if batch_cost else 0.0, datetime.timedelta(seconds=int(left)))
                    samples, reader_cost, batch_cost = 0, 0.0, 0.0
                if self.eval_loader is not None and self.world.main and global_step > start_eval \
                        and (global_step - start_eval) % every == 0:  # rank 0 alone, on the whole Eval set
                    self._evaluate_and_keep_best(epoch, global_step, best)
                reader_start = time.time()
            self.save("latest", epoch, global_step, best)
            if epoch % int(glob["save_epoch_step"]) == 0:
                self.save(f"iter_epoch_{epoch}", epoch, global_step, best)
        log.info("best metric, %s", ", ".join(f"{k}: {v}" for k, v in best.items()))
        return {"best": best, "global_step": global_step, "save_model_dir": str(save_dir)}


def train(config, overrides=()) -> dict:
    """Train as ``python tools/train.py -c config -o overrides...`` does. ``config``: a ``.yml``
    path or a dict; ``overrides``: ``["Global.epoch_num=3", ...]`` or ``{"Global.epoch_num": 3}``.
    Returns ``{"best": the best metric dict, "global_step", "save_model_dir"}``."""
    config = read_config(config, overrides)
    glob, world = config["Global"], current_world()
    save_dir = Path(glob.get("save_model_dir") or GLOBAL_DEFAULTS["save_model_dir"])
    # save_dir and its train.log are made when training starts (Trainer.run), not for a refused run.
    with _log_to(save_dir, world, glob.get("log_ranks") or "0") as train_log, \
            process_group(world, bool(glob.get("use_gpu"))):
        return Trainer._build(config).run(train_log)



# ---------------------------------------------------------------------------------------------
# tools/eval.py
# ---------------------------------------------------------------------------------------------
def _multi_label(section: dict) -> bool:
    """Whether an Eval list encodes with MultiLabelEncode (a MultiHead config's): tools/eval.py runs
    the config's ops whatever the Loss; the metric reads its CTC labels."""
    ops = (section.get("dataset") or {}).get("transforms") or []
    return any(isinstance(op, dict) and "MultiLabelEncode" in op for op in ops)


def _checkpoint_or_pretrained(arch, glob: dict, num_classes, dictionary):
    """(the network to evaluate, the CheckpointModel it came from or None): Global.checkpoints'
    model file and the metric recorded with it found once, the file read only if unchanged since;
    where a save running beside this replaced it meanwhile (a ModelFileError, and the checkpoint
    found otherwise now), found and read once more."""
    if not glob.get("checkpoints"):
        return build_model(arch, glob, num_classes, dictionary, keep_head=True), None
    chosen = resolve(glob["checkpoints"])
    try:
        return build_model(arch, glob, num_classes, dictionary, keep_head=True, checkpoint=chosen), chosen
    except ModelFileError:
        again = resolve(glob["checkpoints"])
        if again == chosen:  # not a save's doing
            raise
    return build_model(arch, glob, num_classes, dictionary, keep_head=True, checkpoint=again), again


def _evaluate(config: dict) -> dict[str, float]:
    glob, arch, dictionary, encoder = _matched(config)
    if not (glob.get("checkpoints") or glob.get("pretrained_model")):
        raise PtocrError("no model to evaluate: give -o Global.checkpoints=output/best_accuracy (a ptocr train "
                         "checkpoint) or Global.pretrained_model=PATH (.pdparams prefix, Paddle folder, .safetensors, "
                         "zoo name)")
    device = select_device(glob)
    settings = DataSettings(arch.task, encoder, arch.class_dim, int(glob["seed"]),
                            multi_label=_multi_label(config["Eval"]), glob=glob)
    dataset = build_dataset(config["Eval"], "Eval", settings)
    loader = build_loader(config["Eval"], "Eval", dataset)
    label_list = dataset.encode.label_list if arch.task == "cls" else None
    post = build_postprocess(config["PostProcess"], arch.task, dictionary, label_list)
    metric = build_metric(config["Metric"], arch.task)
    # The network alone: a MultiHead's GTC branch is training-only (its eval output is the CTC head's).
    net, chosen = _checkpoint_or_pretrained(arch, glob, _class_count(dictionary, label_list), dictionary)
    net = net.to(device)
    best = chosen.best if chosen is not None else {}
    if best:
        log.info("metric in ckpt ***************")
        for k, v in best.items():
            log.info("%s:%s", k, v)
    # tools/eval.py passes use_amp's scaler and amp_level to program.eval, not amp_dtype: float16
    precision = replace(MixedPrecision.from_global(glob), dtype=torch.float16).on(device)
    result = run_evaluation(net, loader, device, Scorer(arch.task, post, dictionary, label_list), metric, precision)
    log.info("metric eval ***************")
    for k, v in result.items():
        log.info("%s:%s", k, v)
    return result


def evaluate_config(config, overrides=()) -> dict[str, float]:
    """Evaluate as ``python tools/eval.py -c config -o overrides...`` does: the model of
    ``Global.checkpoints`` (a ptocr train checkpoint prefix) or ``Global.pretrained_model`` over the
    Eval data, scored by the config's PostProcess and Metric; Train, Loss and Optimizer are not
    read. Logs PaddleOCR's ``metric eval`` lines to stdout; returns the metric (with ``fps``)."""
    config = read_config(config, overrides, EVAL_REQUIRED, "eval")
    with _log_to(None):
        return _evaluate(config)
