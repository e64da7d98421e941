"""Framework-free pre-processing (numpy + OpenCV only), matching PaddleOCR 2.10's inference
code: image loading, detector / recogniser / classifier inputs, and the crops between them
(``poly_crop``: PaddleX's crop of curved, seal-text polygons)."""

from ptocr.transforms.cls import ClsPreprocess, ImageClsPreprocess, cls_preprocess
from ptocr.transforms.crop import get_minarea_rect_crop, get_rotate_crop_image, sorted_boxes
from ptocr.transforms.det import DetPreprocess, det_resize, normalize_hwc
from ptocr.transforms.image import load_image
from ptocr.transforms.seal_crop import poly_crop, sort_poly_boxes
from ptocr.transforms.rec import RecPreprocess, aspect_order, resize_norm_img

__all__ = [
    "ClsPreprocess",
    "DetPreprocess",
    "ImageClsPreprocess",
    "RecPreprocess",
    "aspect_order",
    "cls_preprocess",
    "det_resize",
    "get_minarea_rect_crop",
    "get_rotate_crop_image",
    "load_image",
    "normalize_hwc",
    "poly_crop",
    "resize_norm_img",
    "sort_poly_boxes",
    "sorted_boxes",
]
