"""``Global.use_amp``: PaddleOCR's mixed-precision training (ptocr/training/amp.py). As in
Paddle it does nothing on the CPU; the GPU path (the forward, train and eval, in the AMP dtype, the
loss in float32, the loss scale as ``scale_loss`` / ``use_dynamic_loss_scaling`` say, clipping on
unscaled gradients, an update skipped where a gradient is not finite) runs here on the CPU's
autocast, given to the trainer as a GPU run would get it."""

from __future__ import annotations

import contextlib
import re
import warnings

import pytest
import torch
from conftest import intra_op_threads
from test_train_configs import CONFIGS, REC_FINETUNE, _overrides

from ptocr.errors import PtocrError
from ptocr.training.amp import MixedPrecision
from ptocr.training.config import read_config
from ptocr.training.trainer import Trainer

NAME = "rec_en_number_lite_train.yml"


@pytest.fixture(autouse=True)
def one_thread():
    with intra_op_threads(1):
        yield


def _trainer(shared_dir, tmp_path, *extra) -> Trainer:
    return Trainer.from_config(CONFIGS / NAME, _overrides(NAME, shared_dir, tmp_path, REC_FINETUNE, extra))


@contextlib.contextmanager
def _conv_dtypes(net: torch.nn.Module):
    """Yields the list of output dtypes the network's convs give while inside."""
    seen, hooks = [], []
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(lambda mod, args, out: seen.append(out.dtype)))
    try:
        yield seen
    finally:
        for h in hooks:
            h.remove()


def _on_gpu(trainer: Trainer, precision: MixedPrecision) -> Trainer:
    """``trainer`` with the AMP a GPU run gets (``precision.on(cuda)``), run by the CPU's autocast."""
    trainer.precision, trainer.scaler = precision, precision.scaler(torch.device("cpu"))
    return trainer


def test_settings_as_paddleocr_reads_them():
    assert MixedPrecision.from_global({}) == MixedPrecision()
    # read only where use_amp is on, as PaddleOCR reads them
    assert MixedPrecision.from_global({"use_amp": False, "amp_dtype": "float8", "scale_loss": None}) == MixedPrecision()
    on = MixedPrecision.from_global({"use_amp": True, "scale_loss": None, "amp_dtype": None})
    assert (on.enabled, on.dtype, on.level, on.scale, on.dynamic) == (True, torch.float16, "O2", 1.0, False)
    on = MixedPrecision.from_global({"use_amp": True, "amp_dtype": "BFloat16", "amp_level": "o1", "scale_loss": 1024,
                                     "use_dynamic_loss_scaling": True, "amp_custom_black_list": []})
    assert (on.dtype, on.level, on.scale, on.dynamic) == (torch.bfloat16, "O1", 1024.0, True)
    assert MixedPrecision.from_global({"use_amp": True, "amp_level": "OD"}).level == "OD"
    for bad, message in [({"amp_dtype": "float8"}, "Global.amp_dtype='float8'"),
                         ({"amp_level": "O3"}, "Global.amp_level='O3'"),
                         ({"scale_loss": 0}, "Global.scale_loss=0"), ({"scale_loss": "big"}, "Global.scale_loss='big'"),
                         ({"use_dynamic_loss_scaling": "yes"}, "Global.use_dynamic_loss_scaling='yes'"),
                         ({"amp_custom_white_list": ["matmul_v2"]}, "Paddle op names")]:
        with pytest.raises(PtocrError, match=re.escape(message)):
            MixedPrecision.from_global({"use_amp": True, **bad})
    with pytest.raises(PtocrError, match=re.escape("Global.use_amp='yes'")):
        MixedPrecision.from_global({"use_amp": "yes"})


def test_a_bad_setting_is_refused_when_the_config_is_read(shared_dir, tmp_path):
    overrides = _overrides(NAME, shared_dir, tmp_path, REC_FINETUNE,
                           ["Global.use_amp=true", "Global.amp_custom_black_list=[reduce_mean]"])
    with pytest.raises(PtocrError, match="Global.amp_custom_black_list=.*Paddle op names"):
        read_config(CONFIGS / NAME, overrides)


def test_what_paddle_makes_of_it_per_device(monkeypatch, caplog):
    fp16 = MixedPrecision(True, torch.float16, "O2", 1024.0, True)
    with caplog.at_level("WARNING", logger="ptocr.training"):
        assert fp16.on(torch.device("cpu")) == MixedPrecision()  # Paddle: "so it makes no effect"
    assert "no effect on the cpu" in caplog.text
    for capability, dtype, level in [((6, 1), torch.float16, "O0"), ((7, 0), torch.float16, "O2"),
                                     ((7, 5), torch.bfloat16, "O0"), ((8, 0), torch.bfloat16, "O2")]:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        got = MixedPrecision(True, dtype, "O2", 1024.0, True).on(torch.device("cuda"))
        assert got.enabled and got.level == level  # too old a GPU: the scaler stays, nothing is cast
    assert isinstance(MixedPrecision(True, level="O0").autocast("cuda"), contextlib.nullcontext)


def test_on_the_cpu_use_amp_trains_in_float32(shared_dir, tmp_path):
    trainer = _trainer(shared_dir, tmp_path, "Global.use_amp=true", "Global.amp_dtype=bfloat16")
    assert trainer.scaler is None and not trainer.precision.enabled
    with _conv_dtypes(trainer.net) as seen:
        trainer.step(next(iter(trainer.train_loader)))
    assert seen and set(seen) == {torch.float32}


def test_an_amp_step_runs_the_forward_in_the_amp_dtype(shared_dir, tmp_path):
    trainer = _on_gpu(_trainer(shared_dir, tmp_path), MixedPrecision(True, torch.bfloat16, "O2", 1024.0, False))
    before = {k: v.detach().clone() for k, v in trainer.net.state_dict().items()}
    with _conv_dtypes(trainer.net) as seen:
        preds, losses = trainer.step(next(iter(trainer.train_loader)))
    assert seen and set(seen) == {torch.bfloat16}
    assert preds.dtype == torch.float32 and losses["loss"].dtype == torch.float32  # the loss in float32
    assert torch.isfinite(losses["loss"])
    after = trainer.net.state_dict()
    assert all(after[k].dtype == before[k].dtype for k in before)  # the weights stay float32
    assert any(not torch.equal(after[k], before[k]) for k in before if before[k].is_floating_point())
    # The evaluation's forward runs under the same autocast, as PaddleOCR's eval.
    with _conv_dtypes(trainer.net) as seen:
        trainer.evaluate()
    assert seen and set(seen) == {torch.bfloat16}


@pytest.mark.parametrize("dynamic", [True, False])
def test_a_non_finite_gradient_skips_the_update(shared_dir, tmp_path, dynamic):
    # A small scale: this fresh CTC head's float16 gradients overflow at 1024 (which dynamic
    # scaling would then halve step after step).
    trainer = _on_gpu(_trainer(shared_dir, tmp_path), MixedPrecision(True, torch.float16, "O1", 2.0, dynamic))
    criterion = trainer.criterion

    def exploding(preds, batch):
        losses = criterion(preds, batch)
        return {**losses, "loss": losses["loss"] * float("inf")}
    trainer.criterion = exploding
    before = {k: v.detach().clone() for k, v in trainer.net.named_parameters()}
    lr_step = trainer.recipe.scheduler.last_epoch
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor PyTorch's warning for an LR step without an update before it
        trainer.step(next(iter(trainer.train_loader)))
    assert all(torch.equal(p, before[k]) for k, p in trainer.net.named_parameters())  # no update
    assert trainer.recipe.scheduler.last_epoch == lr_step + 1  # the LR schedule steps all the same
    assert trainer.scaler.get_scale() == (1.0 if dynamic else 2.0)
    trainer.criterion = criterion  # a finite step after it updates again
    trainer.step(next(iter(trainer.train_loader)))
    assert any(not torch.equal(p, before[k]) for k, p in trainer.net.named_parameters())
    assert trainer.scaler.get_scale() == (1.0 if dynamic else 2.0)


class _Recipe:
    """What MixedPrecision.backward_and_step calls on a TrainingRecipe, recording the gradients
    the clip sees."""

    def __init__(self, model):
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda i: 1.0)
        self.model, self.clipped = model, None

    def clip_grad(self):
        self.clipped = [p.grad.clone() for p in self.model.parameters()]


def test_clipping_sees_the_unscaled_gradients():
    torch.manual_seed(0)
    model, x = torch.nn.Linear(4, 3), torch.randn(5, 4)
    model(x).square().mean().backward()
    reference = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    recipe = _Recipe(model)
    precision = MixedPrecision(True, torch.bfloat16, "O1", 1024.0, False)
    precision.backward_and_step(model(x).square().mean(), recipe, precision.scaler(torch.device("cpu")))
    assert recipe.clipped is not None
    for got, want in zip(recipe.clipped, reference):
        torch.testing.assert_close(got, want)  # not 1024x


def test_ptocr_eval_casts_to_float16_as_tools_eval(shared_dir, tmp_path, monkeypatch):
    """tools/eval.py evaluates under auto_cast in float16 where use_amp is on (it does not pass
    amp_dtype on); on a GPU ``ptocr eval`` alike (here: the GPU's settings on the CPU's autocast)."""
    from ptocr.training import trainer as trainer_module
    from ptocr.training.trainer import evaluate_config

    seen = []
    real = trainer_module.run_evaluation

    def recording(net, *args):
        with _conv_dtypes(net) as dtypes:
            result = real(net, *args)
        seen.extend(dtypes)
        return result
    monkeypatch.setattr(trainer_module, "run_evaluation", recording)
    monkeypatch.setattr(MixedPrecision, "on", lambda self, device: self)  # as on a GPU
    overrides = _overrides(NAME, shared_dir, tmp_path, REC_FINETUNE, ["Global.use_amp=true", "Global.amp_dtype=bfloat16"])
    # the fine-tune checkpoint's head has 97 classes: evaluate with its own dictionary size
    overrides += ["Global.character_dict_path=ppocr/utils/en_dict.txt", "Global.use_space_char=true"]
    result = evaluate_config(CONFIGS / NAME, overrides)
    assert "acc" in result and seen and set(seen) == {torch.float16}
