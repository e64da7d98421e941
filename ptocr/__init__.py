"""ptocr: PaddleOCR's PP-OCR models in PyTorch, with proof of parity."""

from ptocr.allocator import keep_freed_memory
from ptocr.api import create_model, list_architectures, list_models, load, save_model
from ptocr.errors import PtocrError
from ptocr.pipeline import OCR, OCRResult
from ptocr.pipeline3 import OCR3
from ptocr.result3 import OCR3Result
from ptocr.predictors import ClsPredictor, DetPredictor, Predictor, RecPredictor, UnwarpPredictor
from ptocr.version import __version__

__all__ = ["OCR", "OCR3", "OCR3Result", "ClsPredictor", "DetPredictor", "OCRResult", "Predictor", "PtocrError", "RecPredictor",
           "UnwarpPredictor", "__version__", "create_model", "keep_freed_memory", "list_architectures", "list_models", "load",
           "save_model"]
