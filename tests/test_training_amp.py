"""``Global.use_amp``: PaddleOCR's mixed-precision training (ptocr/training/amp.py) on the CPU:
the forward (train and eval) in the AMP dtype, the loss in float32, the loss scale as
``scale_loss`` / ``use_dynamic_loss_scaling`` say, clipping on unscaled gradients, and an update
skipped where a gradient is not finite."""

from __future__ import annotations

import re
import warnings

import pytest
import torch
from conftest import intra_op_threads
from test_train_configs import CONFIGS, REC_FINETUNE, _overrides

from ptocr.errors import PtocrError
from ptocr.training.amp import MixedPrecision
from ptocr.training.trainer import Trainer

NAME = "rec_en_number_lite_train.yml"


@pytest.fixture(autouse=True)
def one_thread():
    with intra_op_threads(1):
        yield


def _trainer(shared_dir, tmp_path, *extra) -> Trainer:
    return Trainer.from_config(CONFIGS / NAME, _overrides(NAME, shared_dir, tmp_path, REC_FINETUNE, extra))


def _conv_dtypes(net: torch.nn.Module) -> tuple[list, list]:
    """(the output dtypes the network's convs give, the hooks to remove)."""
    seen, hooks = [], []
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(lambda mod, args, out: seen.append(out.dtype)))
    return seen, hooks


def test_settings_as_paddleocr_reads_them():
    assert MixedPrecision.from_global({}) == MixedPrecision()
    on = MixedPrecision.from_global({"use_amp": True})
    assert (on.enabled, on.dtype, on.level, on.scale, on.dynamic) == (True, torch.float16, "O2", 1.0, False)
    on = MixedPrecision.from_global({"use_amp": True, "amp_dtype": "bfloat16", "amp_level": "O1", "scale_loss": 1024,
                                     "use_dynamic_loss_scaling": True, "amp_custom_black_list": []})
    assert (on.dtype, on.level, on.scale, on.dynamic) == (torch.bfloat16, "O1", 1024.0, True)
    for bad, message in [({"amp_dtype": "float8"}, "Global.amp_dtype='float8'"),
                         ({"amp_level": "O3"}, "Global.amp_level='O3'"),
                         ({"scale_loss": 0}, "Global.scale_loss=0"), ({"scale_loss": "big"}, "Global.scale_loss='big'"),
                         ({"use_amp": "yes"}, "Global.use_amp='yes'"),
                         ({"amp_custom_white_list": ["matmul_v2"]}, "Paddle op names")]:
        with pytest.raises(PtocrError, match=re.escape(message)):
            MixedPrecision.from_global({"use_amp": True, **bad})


def test_a_bad_setting_is_refused_with_the_config(shared_dir, tmp_path):
    with pytest.raises(PtocrError, match="Global.amp_custom_black_list=.*Paddle op names"):
        _trainer(shared_dir, tmp_path, "Global.use_amp=true", "Global.amp_custom_black_list=[reduce_mean]")


def test_an_amp_step_runs_the_forward_in_the_amp_dtype(shared_dir, tmp_path):
    trainer = _trainer(shared_dir, tmp_path, "Global.use_amp=true", "Global.amp_dtype=bfloat16",
                       "Global.scale_loss=1024.0")
    assert trainer.scaler is not None and trainer.scaler.get_scale() == 1024.0
    before = {k: v.detach().clone() for k, v in trainer.net.state_dict().items()}
    seen, hooks = _conv_dtypes(trainer.net)
    preds, losses = trainer.step(next(iter(trainer.train_loader)))
    for h in hooks:
        h.remove()
    assert seen and set(seen) == {torch.bfloat16}
    assert preds.dtype == torch.float32 and losses["loss"].dtype == torch.float32  # the loss in float32
    assert torch.isfinite(losses["loss"])
    after = trainer.net.state_dict()
    assert all(after[k].dtype == before[k].dtype for k in before)  # the weights stay float32
    assert any(not torch.equal(after[k], before[k]) for k in before if before[k].is_floating_point())
    assert trainer.scaler.get_scale() == 1024.0  # static scaling
    # The evaluation's forward runs under the same autocast, as PaddleOCR's eval.
    seen, hooks = _conv_dtypes(trainer.net)
    trainer.evaluate()
    for h in hooks:
        h.remove()
    assert seen and set(seen) == {torch.bfloat16}


def test_without_amp_the_forward_stays_float32(shared_dir, tmp_path):
    trainer = _trainer(shared_dir, tmp_path)
    assert trainer.scaler is None and not trainer.precision.enabled
    seen, hooks = _conv_dtypes(trainer.net)
    trainer.step(next(iter(trainer.train_loader)))
    for h in hooks:
        h.remove()
    assert seen and set(seen) == {torch.float32}


@pytest.mark.parametrize("dynamic", [True, False])
def test_a_non_finite_gradient_skips_the_update(shared_dir, tmp_path, dynamic):
    # A small scale: this untrained CTC head's float16 gradients overflow at 1024 (which dynamic
    # scaling would then halve step after step).
    trainer = _trainer(shared_dir, tmp_path, "Global.use_amp=true", "Global.amp_dtype=float16",
                       "Global.scale_loss=2.0", f"Global.use_dynamic_loss_scaling={str(dynamic).lower()}")
    criterion = trainer.criterion

    def exploding(preds, batch):
        losses = criterion(preds, batch)
        return {**losses, "loss": losses["loss"] * float("inf")}
    trainer.criterion = exploding
    before = {k: v.detach().clone() for k, v in trainer.net.named_parameters()}
    lr_step = trainer.recipe.scheduler.last_epoch
    trainer.step(next(iter(trainer.train_loader)))
    assert all(torch.equal(p, before[k]) for k, p in trainer.net.named_parameters())  # no update
    assert trainer.recipe.scheduler.last_epoch == lr_step + 1  # the LR schedule steps all the same
    assert trainer.scaler.get_scale() == (1.0 if dynamic else 2.0)
    trainer.criterion = criterion  # a finite step after it updates again
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor a warning for the LR stepped without an update before
        trainer.step(next(iter(trainer.train_loader)))
    assert any(not torch.equal(p, before[k]) for k, p in trainer.net.named_parameters())


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


def test_ptocr_eval_runs_its_forward_under_autocast(shared_dir, tmp_path, monkeypatch):
    """tools/eval.py evaluates under auto_cast where use_amp is on: ``ptocr eval`` alike."""
    from ptocr.training import trainer as trainer_module
    from ptocr.training.trainer import evaluate_config

    seen = []
    real = trainer_module.run_evaluation

    def recording(net, *args):
        dtypes, hooks = _conv_dtypes(net)
        try:
            return real(net, *args)
        finally:
            seen.extend(dtypes)
            for h in hooks:
                h.remove()
    monkeypatch.setattr(trainer_module, "run_evaluation", recording)
    overrides = _overrides(NAME, shared_dir, tmp_path, REC_FINETUNE, ["Global.use_amp=true", "Global.amp_dtype=bfloat16"])
    # the fine-tune checkpoint's head has 97 classes: evaluate with its own dictionary size
    overrides += ["Global.character_dict_path=ppocr/utils/en_dict.txt", "Global.use_space_char=true"]
    result = evaluate_config(CONFIGS / NAME, overrides)
    assert "acc" in result and seen and set(seen) == {torch.bfloat16}
