"""Fine-tuning ptocr networks as PaddleOCR trains PP-OCR: targets, losses, optimizer recipe.

* :mod:`ptocr.training.labels`: the targets PaddleOCR's data pipeline makes.
  ``make_db_targets(polygons, height, width, ignore_tags)`` (``MakeBorderMap`` then
  ``MakeShrinkMap``, also as PaddleOCR's data-dict transforms of those names) gives a detector's
  ``threshold_map``, ``threshold_mask``, ``shrink_map``, ``shrink_mask`` for an image already
  resized/cropped to ``height x width``; ``CTCLabelEncode(dictionary, max_text_length=25)`` turns
  a recognizer's text into ``{"label", "length"}``.
* :mod:`ptocr.training.losses`: ``DBLoss()`` and ``CTCLoss()`` with PP-OCR's defaults, taking
  what the networks return in training mode and the collated targets; each returns PaddleOCR's
  dict of losses (``"loss"`` to minimise).
* :mod:`ptocr.training.optimizer`: ``create_optimizer`` rebuilds a config's ``Optimizer:``
  section (per-parameter LR multipliers and L2, the per-iteration schedule, clipping).

A recognizer's training step::

    import ptocr
    from ptocr.training import CTCLabelEncode, CTCLoss, create_optimizer

    net = ptocr.create_model("ch_PP-OCRv4_rec", pretrained=True).train()
    encode = CTCLabelEncode(net.dictionary, max_text_length=25)   # in the Dataset: encode(text)
    criterion = CTCLoss()
    recipe = create_optimizer(net, "PP-OCRv4_mobile_rec.yml", epochs=50, steps_per_epoch=len(loader))
    for batch in loader:             # {"image": N x 3 x 48 x W, "label": N x 25, "length": N}
        loss = criterion(net(batch["image"]), batch)["loss"]
        recipe.optimizer.zero_grad()
        loss.backward()
        recipe.step()

A detector's: targets from ``make_db_targets(polys, 640, 640, ignore_tags)`` per image (after
its augmentation and crop), collated to N x H x W, and ``DBLoss()(net(images), batch)["loss"]``.
"""

from ptocr.training.labels import (CTCLabelEncode, MakeBorderMap, MakeShrinkMap, make_border_map,
                                   make_db_targets, make_shrink_map)
from ptocr.training.losses import CTCLoss, DBLoss
from ptocr.training.optimizer import (COMPONENT_RULES, PaddleRMSProp, TrainingRecipe, create_optimizer,
                                      paddle_lr_schedule, paddleclas_lr_schedule, param_groups,
                                      parameter_attributes)

__all__ = ["TrainingRecipe", "create_optimizer", "param_groups", "paddle_lr_schedule",
           "paddleclas_lr_schedule", "COMPONENT_RULES", "PaddleRMSProp", "parameter_attributes",
           "make_shrink_map", "make_border_map", "make_db_targets", "MakeShrinkMap", "MakeBorderMap",
           "CTCLabelEncode", "DBLoss", "CTCLoss"]
