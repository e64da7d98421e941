"""Fine-tuning ptocr networks as PaddleOCR trains PP-OCR: targets, losses, optimizer recipe.

* :mod:`ptocr.training.labels`: the targets PaddleOCR's data pipeline makes.
  ``make_db_targets(polygons, height, width, ignore_tags)`` (``MakeBorderMap`` then
  ``MakeShrinkMap``, also as PaddleOCR's data-dict transforms of those names) gives a detector's
  ``threshold_map``, ``threshold_mask``, ``shrink_map``, ``shrink_mask`` for an image already
  resized/cropped to ``height x width``; ``CTCLabelEncode(dictionary, max_text_length=25)`` turns
  a recognizer's text into ``{"label", "length"}``.
* :mod:`ptocr.training.losses`: ``DBLoss()``, ``CTCLoss()`` and ``ClsLoss()`` with PP-OCR's defaults, taking
  what the networks return in training mode and the collated targets; each returns PaddleOCR's
  dict of losses (``"loss"`` to minimise).
* :mod:`ptocr.training.multihead` / :mod:`~ptocr.training.nrtr`: PaddleOCR's MultiHead training of
  the v3-v5 recognizers. ``MultiHeadTraining(net)`` adds the training-only GTC branch (NRTR
  decoder for v4 / v5, ``ptocr.training.sar``'s SAR head for v3; settings from the architecture)
  beside the CTC head, stops the CTC gradient at the backbone (``use_guide``) and returns
  PaddleOCR's dict (``ctc``, ``ctc_neck``, ``nrtr`` / ``sar``); ``load_paddle_branch(path)`` reads
  the branch from a PaddleOCR ``.pdparams``. ``MultiLabelEncode`` (``label_ctc``, ``label_gtc`` /
  ``label_sar``, ``length``), ``NRTRLabelEncode``, ``NRTRLoss`` and ``MultiLoss`` (``CTCLoss`` +
  ``NRTRLoss`` / ``SARLoss``, PaddleOCR's dict with ``"loss"``); ``RecDataset`` given a
  ``MultiLabelEncode`` yields its labels. ``model.net`` is what to save.
* :mod:`ptocr.training.optimizer`: ``create_optimizer`` rebuilds a config's ``Optimizer:``
  section (per-parameter LR multipliers and L2, the per-iteration schedule, clipping).
* :mod:`ptocr.training.data` / :mod:`~ptocr.training.augment`: PaddleOCR's label files and
  transforms as torch datasets (``DetDataset``, ``RecDataset``, ``ClsDataset``, ``collate``,
  ``MultiScaleSampler``: PaddleOCR's batches in its order under the same seed); the random
  augmentations draw what PaddleOCR's draw, so the same seeds give the same samples:
  ``EastRandomCropData``, ``CopyPaste`` (PP-OCRv4 / v5 detection's:
  ``det_train_transforms(copy_paste=True)`` or ``DetDataset(..., copy_paste=True)``), ``RecAug``,
  ``RecConAug``, the classifier's ``BaseDataAugmentation`` and ``RandAugment`` (``IaaAugment`` only in
  distribution: PaddleOCR's runs through albumentations). ``on_error="redraw"`` makes a dataset
  log a sample that cannot be made and draw another, as PaddleOCR's (``ptocr train`` does).
* :mod:`ptocr.training.trainer`: ``ptocr train -c CONFIG.yml`` / ``train(config, overrides)``, PaddleOCR's
  ``tools/train.py`` loop from its config (``config``, ``architecture``, ``loaders``, ``components``,
  ``train_state``: the config's sections -> these pieces; checkpoints without pickle;
  ``distributed``: several processes under ``torchrun -m ptocr train``, Train split by
  ``data.DistributedBatchSampler``, Paddle's); ``evaluate_config``: ``ptocr eval -c CONFIG.yml``,
  PaddleOCR's ``tools/eval.py``, through the loop's evaluation (:mod:`~ptocr.training.evaluation`).
* :mod:`ptocr.training.metrics`: what ``tools/eval.py`` prints (``DetMetric``: precision /
  recall / hmean; ``RecMetric``: acc / norm_edit_dis; ``ClsMetric``), and ``evaluate_det`` /
  ``evaluate_rec`` / ``evaluate_cls`` of a predictor over a label file.

A recognizer's training step::

    import ptocr
    from torch.utils.data import DataLoader
    from ptocr.training import CTCLoss, RecDataset, collate, create_optimizer

    net = ptocr.create_model("ch_PP-OCRv4_rec", pretrained=True).train()
    data = RecDataset("train_list.txt", "train_data/", net.dictionary)   # PaddleOCR's label file
    loader = DataLoader(data, batch_size=128, shuffle=True, collate_fn=collate, num_workers=8)
    criterion = CTCLoss()
    recipe = create_optimizer(net, "PP-OCRv4_mobile_rec.yml", epochs=50, steps_per_epoch=len(loader))
    for batch in loader:             # {"image": N x 3 x 48 x W, "label": N x 25, "length": N}
        loss = criterion(net(batch["image"]), batch)["loss"]
        recipe.optimizer.zero_grad()
        loss.backward()
        recipe.step()

With PaddleOCR's GTC branch (v3-v5 recognizers)::

    from ptocr.training import MultiHeadTraining, MultiLabelEncode, MultiLoss

    model = MultiHeadTraining(net).train()            # the recipe: create_optimizer(model, ...), both branches
    data = RecDataset("train_list.txt", "train_data/", MultiLabelEncode(net.dictionary))  # v3: gtc_encode=None
    criterion = MultiLoss()                           # v3: MultiLoss(["CTCLoss", "SARLoss"])
    for batch in DataLoader(data, batch_size=128, shuffle=True, collate_fn=collate):
        # batch: image, label_ctc, label_gtc (v3: label_sar), length, valid_ratio
        loss = criterion(model(batch["image"], batch), batch)["loss"]
        ...
    ptocr.save_model(model.net, "mine.safetensors", dictionary=chars)

A detector's: ``DetDataset("train.txt", "train_data/")`` gives each image augmented and cropped
to 640 x 640 with the four targets (``make_db_targets``), and ``DBLoss()(net(batch["image"]),
batch)["loss"]``; ``evaluate_det(ptocr.load("mine.safetensors"), "test.txt", data_dir=...)``.
"""

from ptocr.training.augment import (BaseDataAugmentation, CopyPaste, EastRandomCropData, IaaAugment, RandAugment, RecAug,
                                    RecConAug)
from ptocr.training.data import (ClsDataset, DetDataset, MultiScaleSampler, RecDataset, collate, det_eval_transforms,
                                 det_train_transforms, read_label_files)
from ptocr.training.labels import (CTCLabelEncode, MakeBorderMap, MakeShrinkMap, make_border_map,
                                   make_db_targets, make_shrink_map)
from ptocr.training.losses import ClsLoss, CTCLoss, DBLoss
from ptocr.training.multihead import MultiHeadTraining, MultiLabelEncode, MultiLoss, gtc_settings
from ptocr.training.nrtr import NRTRDecoder, NRTRLabelEncode, NRTRLoss
from ptocr.training.sar import SARHead, SARLabelEncode, SARLoss
from ptocr.training.metrics import ClsMetric, DetMetric, RecMetric, evaluate_cls, evaluate_det, evaluate_rec
from ptocr.training.optimizer import (COMPONENT_RULES, PaddleRMSProp, TrainingRecipe, create_optimizer,
                                      paddle_lr_schedule, paddleclas_lr_schedule, param_groups,
                                      parameter_attributes)

__all__ = ["TrainingRecipe", "create_optimizer", "param_groups", "paddle_lr_schedule",
           "paddleclas_lr_schedule", "COMPONENT_RULES", "PaddleRMSProp", "parameter_attributes",
           "make_shrink_map", "make_border_map", "make_db_targets", "MakeShrinkMap", "MakeBorderMap",
           "CTCLabelEncode", "DBLoss", "CTCLoss", "ClsLoss",
           "MultiHeadTraining", "MultiLabelEncode", "MultiLoss", "gtc_settings", "NRTRDecoder", "NRTRLabelEncode",
           "NRTRLoss", "SARHead", "SARLabelEncode", "SARLoss",
           "DetDataset", "RecDataset", "ClsDataset", "collate", "MultiScaleSampler", "read_label_files",
           "det_train_transforms", "det_eval_transforms", "EastRandomCropData", "IaaAugment", "CopyPaste", "RecAug",
           "RecConAug", "BaseDataAugmentation", "RandAugment",
           "DetMetric", "RecMetric", "ClsMetric", "evaluate_det", "evaluate_rec", "evaluate_cls"]
