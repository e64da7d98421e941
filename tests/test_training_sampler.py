"""ptocr.training.MultiScaleSampler against PaddleOCR 2.10's own MultiScaleSampler (and the
SimpleDataSet that sets up its seed and the global generator), run from its sources."""

from __future__ import annotations

import math
import os
import random
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import compile_paddleocr

from ptocr.training.data import MultiScaleSampler

V4_SCALES = [[320, 32], [320, 48], [320, 64]]
# (dataset size, scales, first_bs, fix_bs): the v4 / v5 setting, sizes that end a round early or
# late, fewer samples than a batch, square int scales, unfloored sides.
CASES = [(1000, V4_SCALES, 128, False), (37, V4_SCALES, 8, False), (50, V4_SCALES, 4, True),
         (5, V4_SCALES, 2, False), (3, V4_SCALES, 8, True), (1, V4_SCALES, 4, False),
         (101, [64, 96, 128], 6, False), (23, [[300, 40], [200, 70]], 3, False)]


@pytest.fixture(scope="module")
def paddle(paddleocr_src):
    """PaddleOCR's MultiScaleSampler / SimpleDataSet, ``dist`` standing in for the cards."""
    ns = dict(np=np, random=random, math=math, os=os, Sampler=object, Dataset=object,
              create_operators=lambda ops, config: [],
              dist=SimpleNamespace(get_world_size=lambda: 1, get_rank=lambda: 0))
    compile_paddleocr(paddleocr_src, "ppocr/data/multi_scale_sampler.py", ["MultiScaleSampler"], ns)
    compile_paddleocr(paddleocr_src, "ppocr/data/simple_dataset.py", ["SimpleDataSet"], ns)
    return ns


@contextmanager
def _global_random_kept():
    state = random.getstate()
    try:
        yield
    finally:
        random.setstate(state)


class _Source:
    """The attributes PaddleOCR's sampler reads off its dataset (``ds_width`` off)."""

    def __init__(self, n, seed):
        self.data_idx_order_list, self.ds_width, self.seed = list(range(n)), False, seed

    def __len__(self):
        return len(self.data_idx_order_list)


def _train_py_sampler(paddle, tmp_path, n, seed, **options):
    """What tools/train.py builds: set_seed, the Train SimpleDataSet (shuffled lines), the sampler."""
    label = tmp_path / "train.txt"
    label.write_text("".join(f"w{i}.png\tx\n" for i in range(n)), encoding="utf-8")
    config = {"Global": {}, "Train": {"dataset": {"label_file_list": [str(label)], "data_dir": str(tmp_path),
                                                  "transforms": []},
                                      "loader": {"shuffle": True}}}
    random.seed(seed)  # ppocr.utils.utility.set_seed
    dataset = paddle["SimpleDataSet"](config, "Train", SimpleNamespace(info=lambda *a: None), seed)
    dataset.ds_width = False  # MultiScaleDataSet's default
    return paddle["MultiScaleSampler"](dataset, **options)


def _passes(sampler, count, epochs=None):
    """``count`` passes as lists of (width, height, index) batches, ``set_epoch`` before each
    pass whose entry in ``epochs`` is not None."""
    out = []
    for k in range(count):
        if epochs and epochs[k] is not None:
            sampler.set_epoch(epochs[k])
        out.append([[tuple(item[:3]) for item in batch] for batch in sampler])
    return out


@pytest.mark.parametrize("n, scales, first_bs, fix_bs", CASES)
def test_default_gives_train_py_batches(paddle, tmp_path, n, scales, first_bs, fix_bs):
    options = dict(scales=scales, first_bs=first_bs, fix_bs=fix_bs)
    for seed in (1024, 7):
        with _global_random_kept():
            reference = _train_py_sampler(paddle, tmp_path, n, seed, **options)
            expected = _passes(reference, 4)
        state = random.getstate()
        mine = MultiScaleSampler(n, seed=seed, **options)
        assert len(mine) == len(reference)
        assert _passes(mine, 4) == expected
        assert random.getstate() == state  # the global generator left alone


def test_default_is_the_v4_config(paddle, tmp_path):
    with _global_random_kept():
        reference = _train_py_sampler(paddle, tmp_path, 300, 1024, scales=V4_SCALES, first_bs=16, fix_bs=False,
                                      divided_factor=[8, 16], is_training=True)
        expected = _passes(reference, 2)
    assert _passes(MultiScaleSampler(300, first_bs=16), 2) == expected


@pytest.mark.parametrize("n, scales, first_bs, fix_bs", CASES[:5])
def test_unseeded_draws_from_the_global_generator(paddle, n, scales, first_bs, fix_bs):
    options = dict(scales=scales, first_bs=first_bs, fix_bs=fix_bs)
    epochs = [None, None, 5, None, 2]  # set_epoch between some passes, as a loop might
    with _global_random_kept():
        random.seed(11)
        reference = paddle["MultiScaleSampler"](_Source(n, None), **options)
        expected, after = _passes(reference, 5, epochs), random.getstate()
        random.seed(11)
        mine = MultiScaleSampler(n, seed=None, **options)
        assert _passes(mine, 5, epochs) == expected
        assert random.getstate() == after  # the same draws, the reseeds included


@pytest.mark.parametrize("n, scales, first_bs, fix_bs", CASES[:4])
def test_given_generator_state(paddle, n, scales, first_bs, fix_bs):
    # The layout drawn from whatever state the generator is in (here a dataset without shuffle).
    options = dict(scales=scales, first_bs=first_bs, fix_bs=fix_bs)
    with _global_random_kept():
        random.seed(3)
        random.random()
        expected = _passes(paddle["MultiScaleSampler"](_Source(n, 99), **options), 3)
    rng = random.Random(3)
    rng.random()
    assert _passes(MultiScaleSampler(n, seed=99, rng=rng, **options), 3) == expected
    with _global_random_kept():
        random.seed(3)
        random.random()
        assert _passes(MultiScaleSampler(n, seed=99, rng=random, **options), 3) == expected


@pytest.mark.parametrize("n, replicas", [(100, 2), (37, 3), (8, 4), (5, 2)])
def test_replica_split(paddle, tmp_path, n, replicas):
    options = dict(scales=V4_SCALES, first_bs=4, fix_bs=False)
    for rank in range(replicas):
        paddle["dist"] = SimpleNamespace(get_world_size=lambda: replicas, get_rank=lambda: rank)
        try:
            with _global_random_kept():
                expected = _passes(_train_py_sampler(paddle, tmp_path, n, 1024, **options), 3)
        finally:
            paddle["dist"] = SimpleNamespace(get_world_size=lambda: 1, get_rank=lambda: 0)
        assert _passes(MultiScaleSampler(n, num_replicas=replicas, rank=rank, **options), 3) == expected


@pytest.mark.parametrize("n", [1, 10, 33])
def test_not_training(paddle, tmp_path, n):
    options = dict(scales=[[321, 47], [320, 64]], first_bs=4, is_training=False)
    with _global_random_kept():
        expected = _passes(_train_py_sampler(paddle, tmp_path, n, 1024, **options), 3)
    assert _passes(MultiScaleSampler(n, **options), 3) == expected
    assert {batch[0][:2] for batch in expected[0]} == {(321, 47)}  # one scale, unfloored
