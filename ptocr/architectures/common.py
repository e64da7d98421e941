"""Settings several architecture families share: forms a source may be saved in, and
PaddleOCR 2.x's ``tools/infer`` defaults for DB post-processing."""

from __future__ import annotations

# Forms are groups of alternative arguments; the converter tries every combination and
# keeps the one the source's tensors fill exactly.

# Rep layers (PPLCNetV3): training checkpoints hold the unfused branches, inference
# models exported after rep() only ``reparam_conv``.
REP_FORMS = {
    "fused": {"backbone": {"reparam": True}},
    "unfused": {"backbone": {"reparam": False}},
}
# DB heads: inference programs hold only the probability branch, training checkpoints
# also the threshold branch.
DB_HEAD_FORMS = {
    "inference head": {"head": {"with_thresh": False}},
    "training head": {"head": {"with_thresh": True}},
}

DB_POSTPROCESS = {
    "thresh": 0.3,
    "box_thresh": 0.6,
    "max_candidates": 1000,
    "unclip_ratio": 1.5,
    "use_dilation": False,
    "score_mode": "fast",
}

# The SVTR encoder of MultiHead's CTC branch in the PP-OCRv4 recognizers (mobile and server).
SVTR_CTC_NECK = {
    "name": "SequenceEncoder",
    "encoder_type": "svtr",
    "dims": 120,
    "depth": 2,
    "hidden_dims": 120,
    "kernel_size": [1, 3],
    "use_guide": True,
}

# configs/rec/SVTRv2/ch_SVTRv2_rec.yml and ch_RepSVTR_rec.yml: the same encoder at 256 channels.
SVTRV2_CTC_NECK = {**SVTR_CTC_NECK, "dims": 256, "hidden_dims": 256}

# MultiHead's training-only branch beside the CTC one (``ptocr.training.MultiHeadTraining``
# builds it), as the PaddleOCR configs' ``head_list`` give it; a setting a config leaves out
# is MultiHead's default (nrtr_dim 256, num_decoder_layers 4, use_pos / use_pool off).
# configs/rec/PP-OCRv4/ch_PP-OCRv4_rec(_hgnet).yml, configs/rec/PP-OCRv5/PP-OCRv5_*_rec.yml:
NRTR_GTC_HEAD = {"name": "NRTRHead", "nrtr_dim": 384, "num_decoder_layers": 4, "max_text_length": 25}
# configs/rec/PP-OCRv3/ch_PP-OCRv3_rec.yml:
SAR_GTC_HEAD = {"name": "SARHead", "enc_dim": 512, "max_text_length": 25}
# configs/rec/SVTRv2/ch_SVTRv2_rec.yml and ch_RepSVTR_rec.yml:
SVTRV2_GTC_HEAD = {**NRTR_GTC_HEAD, "num_decoder_layers": 2}

# ptocr.optimize.for_inference settings of the recognizers with an LSTM neck: no shape graphs.
# The LSTM turns float32 rounding of its input into output changes tens of times larger (noise
# of 1e-5 on the v2.0 mobile backbone's output moves its probabilities by 5e-4), so a fused
# graph's rounding, no worse than eager's in the backbone, put five of the nine shared v2.0
# recognizers 1.3e-4 to 2.0e-4 from eager, past the parity tolerance (1e-4).
RNN_NECK_INFERENCE = {"shape_graphs": False}
