"""MobileNetV1Enhance architectures: the PP-OCRv2 and PP-OCRv3 mobile recognizers.

* ch_PP-OCRv2_rec: the student of PaddleOCR's ``ch_PP-OCRv2_rec_distillation`` (the inference
  model is the student; its names carry no ``Student.`` prefix there): MobileNetV1Enhance x0.5,
  a 2-layer BiLSTM of 64 units per direction, and a CTC head with a 96-wide middle Linear.
  Input 3 x 32 x 320.
* ch_PP-OCRv3_rec: SVTR-LCNet, i.e. MobileNetV1Enhance x0.5 whose last conv also halves the
  width and whose last pooling averages, then PaddleOCR's ``MultiHead``: the CTC branch (an
  SVTR encoder, dims 64, depth 2, hidden 120, and a one-Linear CTC head) is what inference
  runs; the SAR branch only guides training. Input 3 x 48 x 320.

The PP-OCRv3 recognizers PaddleOCR released for other languages (en, arabic, chinese_cht,
cyrillic, devanagari, japan, ka, korean, latin, ta, te) are this same network; only the class
count (and so the dictionary) differs, which the converter takes from the source. They are
models of ``ch_PP-OCRv3_rec``, not separate architectures.
"""

from __future__ import annotations

from ptocr.architectures.common import RNN_NECK_INFERENCE, SAR_GTC_HEAD

ARCHITECTURES: dict[str, dict] = {
    "ch_PP-OCRv2_rec": {
        "task": "rec",
        "family": "mobilenetv1_enhance_crnn",
        "model": {
            "backbone": {"name": "MobileNetV1Enhance", "scale": 0.5},
            "neck": {"name": "SequenceEncoder", "encoder_type": "rnn", "hidden_size": 64},
            "head": {"name": "CTCHead", "num_classes": 6625, "mid_channels": 96},
        },
        "preprocess": {"image_shape": [3, 32, 320]},
        "postprocess": {},
        "inference": RNN_NECK_INFERENCE,
        "dictionary": {"builtin": "ppocr_keys_v1.txt", "use_space_char": True},
    },
    "ch_PP-OCRv3_rec": {
        "task": "rec",
        # PaddleOCR calls this algorithm SVTR_LCNet too: the MultiHead names are those of
        # PP-OCRv4 rec, so the same table applies.
        "family": "svtr_lcnet_multihead",
        "model": {
            "backbone": {
                "name": "MobileNetV1Enhance",
                "scale": 0.5,
                "last_conv_stride": [1, 2],
                "last_pool_type": "avg",
            },
            "neck": {
                "name": "SequenceEncoder",
                "encoder_type": "svtr",
                "dims": 64,
                "depth": 2,
                "hidden_dims": 120,
                "use_guide": True,
            },
            "head": {"name": "CTCHead", "num_classes": 6625},
        },
        "preprocess": {"image_shape": [3, 48, 320]},
        "postprocess": {},
        "dictionary": {"builtin": "ppocr_keys_v1.txt", "use_space_char": True},
        "gtc_head": SAR_GTC_HEAD,
    },
}
