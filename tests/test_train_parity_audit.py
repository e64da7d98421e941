"""Training mode as Paddle trains: what a fine-tuning step computes and the state it updates.

Each check holds against an independent formula, and against Paddle itself where paddle is
importable (CI installs paddlepaddle)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

import ptocr
from ptocr.architectures import get_architecture, list_architectures
from ptocr.models.build import build_model
from ptocr.models.layers import ConvBNAct, PaddleBatchNorm1d, PaddleBatchNorm2d


@pytest.fixture(scope="module")
def paddle():
    return pytest.importorskip("paddle")


def _batches(shape, count=3, seed=0):
    g = np.random.default_rng(seed)
    return [(g.standard_normal(shape) * 2 + 1).astype(np.float32) for _ in range(count)]


def _paddle_running_var(batches, axes, momentum=0.9):
    """Paddle's documented update: momentum * old + (1 - momentum) * biased batch variance."""
    var = np.ones(batches[0].shape[1], np.float64)
    for x in batches:
        var = momentum * var + (1 - momentum) * x.astype(np.float64).var(axes)
    return var


def _train(bn, batches):
    bn.train()
    for x in batches:
        bn(torch.from_numpy(x))
    return bn


# ---- the running variance: Paddle's biased update, where torch's is unbiased ----


@pytest.mark.parametrize("cls, shape, axes", [(PaddleBatchNorm2d, (4, 3, 5, 5), (0, 2, 3)),
                                              (PaddleBatchNorm1d, (4, 3, 7), (0, 2)),
                                              (PaddleBatchNorm1d, (6, 3), (0,))])
def test_running_variance_follows_paddles_formula(cls, shape, axes):
    batches = _batches(shape)
    bn = _train(cls(3), batches)
    np.testing.assert_allclose(bn.running_var.numpy(), _paddle_running_var(batches, axes), rtol=1e-6)
    mean = sum(0.1 * 0.9 ** (len(batches) - 1 - i) * x.mean(axes) for i, x in enumerate(batches))
    np.testing.assert_allclose(bn.running_mean.numpy(), mean, rtol=1e-5, atol=1e-7)


def test_cumulative_average_momentum_none_is_biased_too():
    batches = _batches((2, 3, 4, 4))
    bn = _train(PaddleBatchNorm2d(3, momentum=None), batches)
    expected = np.mean([x.var((0, 2, 3)) for x in batches], axis=0)
    np.testing.assert_allclose(bn.running_var.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("dims", [2, 1])
def test_running_statistics_match_paddles_batch_norm(paddle, dims):
    shape = (4, 3, 5, 5) if dims == 2 else (4, 3, 7)
    batches = _batches(shape, seed=1)
    ref = paddle.nn.BatchNorm2D(3) if dims == 2 else paddle.nn.BatchNorm1D(3)
    ref.train()
    for x in batches:
        ref(paddle.to_tensor(x))
    bn = _train(PaddleBatchNorm2d(3) if dims == 2 else PaddleBatchNorm1d(3), batches)
    np.testing.assert_allclose(bn.running_var.numpy(), ref._variance.numpy(), rtol=1e-6)
    np.testing.assert_allclose(bn.running_mean.numpy(), ref._mean.numpy(), rtol=1e-5, atol=1e-7)


def test_conv_bn_hardswish_trains_as_paddles_fluid_batch_norm(paddle):
    # ResNet-vd / MobileNetV1Enhance's conv + nn.BatchNorm(act=...): output, weight gradient and
    # running statistics of one training step, from the same weights and input.
    x = _batches((2, 3, 8, 8), 1, seed=2)[0]
    block = ConvBNAct(3, 4, 3, act="hardswish").train()
    conv = paddle.nn.Conv2D(3, 4, 3, padding=1, bias_attr=False)
    conv.weight.set_value(block.conv.weight.detach().numpy())
    bn = paddle.nn.BatchNorm(4, act="hard_swish")
    bn.train()
    px = paddle.to_tensor(x)
    out = bn(conv(px))
    (out * out).sum().backward()
    y = block(torch.from_numpy(x))
    (y * y).sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), out.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(block.conv.weight.grad.numpy(), conv.weight.grad.numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(block.bn.running_var.numpy(), bn._variance.numpy(), rtol=1e-5)
    np.testing.assert_allclose(block.bn.running_mean.numpy(), bn._mean.numpy(), rtol=1e-5, atol=1e-6)


# ---- every model the build path makes uses them; eval, keys and BN folding unchanged ----


@pytest.mark.parametrize("name", list_architectures())
def test_every_batch_norm_of_every_architecture_updates_as_paddle(name):
    model = build_model(get_architecture(name)["model"], device="meta")
    norms = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    torch_ones = [n for n in norms if not isinstance(model.get_submodule(n), (PaddleBatchNorm2d, PaddleBatchNorm1d))]
    assert norms and not torch_ones, f"{name}: torch batch norms {torch_ones[:3]}"


def test_eval_output_state_keys_and_gradients_equal_torchs():
    torch.manual_seed(0)
    ours, plain = PaddleBatchNorm2d(3), nn.BatchNorm2d(3)
    x = torch.randn(4, 3, 5, 5)
    _train(ours, [x.numpy()])
    plain.load_state_dict(ours.state_dict())
    assert list(ours.state_dict()) == list(plain.state_dict())
    assert torch.equal(ours.eval()(x), plain.eval()(x))
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours.train()(a).pow(2).sum().backward()
    plain.train()(b).pow(2).sum().backward()
    assert torch.equal(a.grad, b.grad)


def test_batch_norm_folding_still_finds_them():
    from ptocr.optimize import fold_batch_norms

    block = ConvBNAct(3, 4, 3, act="relu")
    _train(block, [np.random.default_rng(3).standard_normal((2, 3, 6, 6)).astype(np.float32)])
    x = torch.randn(1, 3, 6, 6)
    with torch.no_grad():
        before = block.eval()(x)
        assert fold_batch_norms(block, x) == 1
        torch.testing.assert_close(block(x), before, rtol=1e-5, atol=1e-6)


def test_a_created_recognizer_trains_its_statistics_as_paddle():
    net = ptocr.create_model("ch_PP-OCRv4_rec", num_classes=10).train()
    bn = net.backbone.conv1.bn
    seen = []
    hook = bn.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].detach().double()))
    net(torch.randn(2, 3, 48, 64))
    hook.remove()
    expected = 0.9 + 0.1 * seen[0].var((0, 2, 3), unbiased=False)
    torch.testing.assert_close(bn.running_var.double(), expected, rtol=1e-6, atol=0)


# ---- found the same as Paddle (guards) ----


def test_activations_and_dropout_modes_match_paddle(paddle):
    import torch.nn.functional as F

    x = np.linspace(-5, 5, 401, dtype=np.float32)
    px, tx = paddle.to_tensor(x), torch.from_numpy(x)
    assert np.array_equal(paddle.nn.functional.hardswish(px).numpy(), F.hardswish(tx).numpy())
    np.testing.assert_allclose(paddle.nn.functional.swish(px).numpy(), F.silu(tx).numpy(), atol=1e-6)
    drop = paddle.nn.Dropout(0.5)  # upscale_in_train, as the SVTR neck's: torch's nn.Dropout
    drop.train()
    assert np.unique(drop(paddle.ones([64, 64])).numpy()).tolist() == [0.0, 2.0]
    assert torch.unique(nn.Dropout(0.5).train()(torch.ones(64, 64))).tolist() == [0.0, 2.0]
