"""ptocr: PaddleOCR's PP-OCR models in PyTorch, with proof of parity."""

__version__ = "0.1.0"

from ptocr.allocator import keep_freed_memory  # noqa: E402
from ptocr.errors import PtocrError  # noqa: E402
from ptocr.load import load  # noqa: E402
from ptocr.manifest import list_models  # noqa: E402
from ptocr.pipeline import OCR, OCRResult  # noqa: E402

__all__ = ["OCR", "OCRResult", "PtocrError", "__version__", "keep_freed_memory", "list_models", "load"]
