"""Framework-free post-processing (numpy + OpenCV + pyclipper + shapely), matching
PaddleOCR 2.10: DB boxes, CTC text, direction classes."""

from ptocr.postprocess.cls import ClsPostProcess, apply_cls_rotation, should_rotate
from ptocr.postprocess.ctc import CTCLabelDecode, reverse_rtl
from ptocr.postprocess.db import (
    DBPostProcess,
    filter_tag_det_res,
    filter_tag_det_res_only_clip,
    order_points_clockwise,
    unclip,
)

__all__ = [
    "CTCLabelDecode",
    "ClsPostProcess",
    "DBPostProcess",
    "apply_cls_rotation",
    "filter_tag_det_res",
    "filter_tag_det_res_only_clip",
    "order_points_clockwise",
    "reverse_rtl",
    "should_rotate",
    "unclip",
]
