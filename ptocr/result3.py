"""What the PaddleOCR 3.x pipeline (``ptocr.pipeline3.OCR3``) returns for one image or PDF page:
the lines (as ``OCRResult``) plus PaddleOCR 3.x's own result fields and JSON shape."""

from __future__ import annotations

import io
import json
import mimetypes
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ptocr.atomic import OutputError, OutputFormatError, blocked_output, output_path, write_outputs
from ptocr.errors import first_line
from ptocr.result import OCRResult
from ptocr.visualize import draw_ocr

__all__ = ["OCR3Result", "ANGLE_OF_CLASS"]


def _is_image_file(path) -> bool:
    """paddlex's test of a save path or input name: its MIME type is an image's."""
    kind, _ = mimetypes.guess_type(os.fspath(path))
    return kind is not None and kind.startswith("image/")


def _pil_formats() -> dict[str, str]:
    """The suffixes (lower case) Pillow writes an RGB picture as, and their formats."""
    from PIL import Image

    Image.init()
    return {ext: fmt for ext, fmt in Image.registered_extensions().items()
            if fmt in Image.SAVE and fmt not in _PIL_NOT_RGB}


# Formats Pillow registers a writer for that cannot write an RGB picture (1-bit or palette only,
# or a writer left to a plugin that is not installed).
_PIL_NOT_RGB = {"BLP", "BUFR", "GRIB", "HDF5", "MSP", "PALM", "WMF", "XBM"}


def _encoded(path: Path, image) -> bytes:
    """``image`` (PIL) in the format ``path``'s suffix names; OutputFormatError where Pillow fails."""
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=_pil_formats()[path.suffix.lower()])
    except (OSError, ValueError, KeyError) as e:
        raise OutputFormatError(path, f"Pillow cannot write this picture as {path.suffix!r} "
                                      f"({first_line(e) or type(e).__name__})") from None
    return buffer.getvalue()


# textline orientation class id (PaddleOCR 3.x's ``textline_orientation_angles``) -> degrees;
# -1: no textline orientation step.
ANGLE_OF_CLASS = {0: 0, 1: 180, -1: None}
# Why a key of paddlex's result dict may be missing here (``result[key]``'s KeyError says it).
_NOT_HERE = {
    "vis_fonts": " (paddlex's fonts for drawing res.img; ptocr draws with its own font, or the one "
                 "given to result.visualize(font=path))",
    "textline_orientation_angles": " (as in paddlex, a page where nothing was detected has none)",
    "text_word": " (word boxes need return_word_box=True)",
    "text_word_region": " (word boxes need return_word_box=True)",
    "text_word_boxes": " (word boxes need return_word_box=True)",
}


def _bbox(points) -> list[int]:
    """``[x_min, y_min, x_max, y_max]`` of a quad's corners, as PaddleX's convert_points_to_boxes."""
    points = np.asarray(points)
    return [int(v) for v in (*points.min(axis=0), *points.max(axis=0))]


@dataclass
class OCR3Result(OCRResult):
    """``lines`` (box = the line's 4 corners, or its polygon for seal text, i.e. ``rec_polys``) and
    the fields PaddleOCR 3.x reports. ``page_index`` (``OCRResult``'s): 0-based page of a PDF or TIFF, None for images."""

    dt_polys: list = field(default_factory=list)  # every detected quad (seal: polygon), before the score threshold
    textline_orientation_angles: list[int] = field(default_factory=list)  # per line: 0, 1 (180 degrees) or -1
    doc_angle: int = -1  # document orientation (0, 90, 180, 270), -1 without that step
    settings: dict = field(default_factory=dict, repr=False)  # model_settings, text_det_params, ...
    # With return_word_box: per line, its words and their quads (4 corners each); else None.
    text_word: list[list[str]] | None = None
    text_word_region: list[list] | None = None
    # The document preprocessor's page as read and after its turn (``image`` is its output).
    input_img: np.ndarray | None = field(default=None, repr=False, compare=False)
    rot_img: np.ndarray | None = field(default=None, repr=False, compare=False)
    text_type: str = "general"  # "seal": lines are polygons, and paddlex reports no rec_boxes

    @property
    def rec_polys(self) -> list[list[list[int]]]:
        return [[[int(x), int(y)] for x, y in line.box] for line in self.lines]

    @property
    def rec_boxes(self) -> list[list[int]]:
        """Per line ``[x_min, y_min, x_max, y_max]`` of its quad (none for seal text, as paddlex)."""
        return [] if self.text_type == "seal" else [_bbox(p) for p in self.rec_polys]

    @property
    def text_word_boxes(self) -> list[list[list[int]]] | None:
        """Per line, ``[x_min, y_min, x_max, y_max]`` of each word's quad (None without word boxes)."""
        if self.text_word_region is None:
            return None
        return [[_bbox(q) for q in line] for line in self.text_word_region]

    def __getitem__(self, key):
        """A line by index (as ``OCRResult``), or a field by PaddleOCR 3.x's name as its result
        dict holds it (``res["rec_texts"]``): ``dt_polys``/``rec_polys`` lists of 4 x 2 (seal: K x 2) int
        arrays, ``rec_boxes`` an N x 4 int array, ``text_word_boxes`` one array per line,
        ``doc_preprocessor_res["output_img"]`` the page read; the rest as ``to_paddleocr()``.
        (Arrays are int32 where paddlex's int16 would wrap past 32767.)"""
        if not isinstance(key, str):
            return self.lines[key]
        return self._field(key, self.to_paddleocr())

    def _field(self, key: str, fields: dict):
        """``self[key]`` of a result whose ``to_paddleocr()`` is ``fields``."""
        names = self._field_names(fields)
        if key not in names:
            why = _NOT_HERE.get(key, "")
            raise KeyError(f"{key!r} is not a field of this result{why}; its fields: {', '.join(names)}")
        if key == "text_word_region":
            return [[[[int(x), int(y)] for x, y in q] for q in line] for line in self.text_word_region]
        if key in ("dt_polys", "rec_polys"):
            return [np.asarray(p, dtype=np.int32).reshape(-1, 2) for p in fields[key]]
        if key == "rec_boxes":  # paddlex's convert_points_to_boxes: np.array([]) when empty
            return np.asarray(fields[key], dtype=np.int32) if fields[key] else np.array([])
        if key == "text_word_boxes":
            return [np.asarray(b, dtype=np.int32) if b else np.array([]) for b in fields[key]]
        if key == "doc_preprocessor_res":
            return self._doc_preprocessor_res(fields)
        return fields[key]

    def _doc_preprocessor_res(self, fields: dict) -> dict:
        """paddlex's ``doc_preprocessor_res``: with the preprocessor its fields and the page as
        read (``input_img``), turned (``rot_img``) and output (``output_img``); without it the
        page alone."""
        if "doc_preprocessor_res" not in fields:
            return {"output_img": self.image}
        res = fields["doc_preprocessor_res"]
        return {"input_path": res["input_path"], "page_index": res["page_index"],
                "input_img": self.image if self.input_img is None else self.input_img,
                "model_settings": res["model_settings"], "angle": res["angle"],
                "rot_img": self.image if self.rot_img is None else self.rot_img, "output_img": self.image}

    def __setitem__(self, key, value) -> None:
        """paddlex's result is a dict a script may write into; here every field is computed from
        ``lines`` (and the detection) when read, so a write would be lost: refused, saying what to
        change instead."""
        raise TypeError(f"result[{key!r}] = ...: an OCR3Result's fields are read from its lines, not stored; "
                        "change result.lines (line.text, line.box, line.score) or keep your own copy "
                        "(fields = dict(result.items()))")

    def __contains__(self, item) -> bool:
        return item in self.keys() if isinstance(item, str) else item in self.lines

    def keys(self) -> list[str]:
        """The fields ``result[name]`` gives (PaddleOCR 3.x's result dict)."""
        return self._field_names(self.to_paddleocr())

    def get(self, key, default=None):
        """``result[key]`` for a field name, else ``default``, as paddlex's result (a dict) answers
        ``res.get("rec_texts", [])``."""
        fields = self.to_paddleocr()
        return self._field(key, fields) if isinstance(key, str) and key in self._field_names(fields) else default

    def items(self) -> list[tuple]:
        """``(name, result[name])`` of each field (paddlex's ``res.items()``)."""
        fields = self.to_paddleocr()
        return [(key, self._field(key, fields)) for key in self._field_names(fields)]

    def values(self) -> list:
        """``result[name]`` of each field (paddlex's ``res.values()``)."""
        return [value for _, value in self.items()]

    def _field_names(self, fields: dict) -> list[str]:
        """``keys()`` of a result whose ``to_paddleocr()`` is ``fields``."""
        names = [*fields, "doc_preprocessor_res"]
        return list(dict.fromkeys(names + (["text_word_region"] if self.text_word_region is not None else [])))

    def visualize(self, font=None) -> np.ndarray:
        """As ``OCRResult.visualize``, each word's box outlined too when the result has them."""
        if self.image is None:
            raise ValueError("this result holds no image to draw on")
        return draw_ocr(self.image, self.lines, font=font, word_quads=self.text_word_region)

    @property
    def doc_preprocessor(self) -> dict | None:
        """Which document steps made the page the lines are on (``model_settings``: orientation,
        unwarping) and the orientation's ``angle`` (-1 without it); None when neither ran."""
        if self.doc_angle == -1 and not self.settings.get("model_settings", {}).get("use_doc_preprocessor"):
            return None
        return {"model_settings": self.settings.get("doc_preprocessor", {"use_doc_orientation_classify": True,
                                                                         "use_doc_unwarping": False}),
                "angle": self.doc_angle}

    @property
    def json(self) -> dict:
        """PaddleOCR 3.x's ``res.json``: ``{"res": to_paddleocr()}``."""
        return {"res": self.to_paddleocr()}

    def save_to_json(self, save_path: str | os.PathLike, indent: int = 4, ensure_ascii: bool = False) -> Path:
        """Write ``json["res"]`` as PaddleOCR 3.x's ``res.save_to_json`` does: to ``save_path`` when it
        names a ``.json`` file, else into that folder as ``<input stem>[_<page_index>]_res.json``
        (each PDF or TIFF page its own file). Returns the path written. Written whole or not at all;
        where it cannot be (a folder or a file in the way, a full disk), ``OutputError`` says why."""
        path, data = self._json_output(save_path, indent, ensure_ascii)
        write_outputs([(path, data)])
        return path

    def _json_output(self, save_path, indent: int = 4, ensure_ascii: bool = False) -> tuple[Path, bytes]:
        """(the file ``save_to_json(save_path)`` writes, its bytes)."""
        path = output_path(save_path)
        if path.suffix.lower() != ".json":
            path = path / f"{self._saved_stem()}_res.json"
        why = blocked_output(path)
        if why is not None:
            if why == "it is a folder":
                why += " (a save path ending in .json names the file to write; give the folder without it)"
            raise OutputError(path, why)
        return path, json.dumps(self.json["res"], indent=indent, ensure_ascii=ensure_ascii).encode("utf-8")

    @property
    def img(self) -> dict:
        """PaddleOCR 3.x's ``res.img``: ``{"ocr_res_img": the page with its lines beside their
        texts}``, with the document preprocessor also ``"preprocessed_img"`` (the page as read,
        turned and unwarped, side by side); PIL images, RGB."""
        from PIL import Image

        images = {"ocr_res_img": Image.fromarray(np.ascontiguousarray(self.visualize()[:, :, ::-1]))}
        if self.doc_preprocessor is not None:
            images["preprocessed_img"] = self._preprocessed_img()
        return images

    def _preprocessed_img(self):
        """paddlex's doc preprocessor picture: the three pages in a row, each captioned below."""
        from PIL import Image, ImageDraw

        res = self._doc_preprocessor_res(self.to_paddleocr())
        pages = [res["input_img"], res["rot_img"], res["output_img"]]
        settings = res["model_settings"]
        captions = ["Original Image", f"Rotated Image ({settings['use_doc_orientation_classify']}, {res['angle']})",
                    f"Unwarping Image ({settings['use_doc_unwarping']})"]
        height = max(p.shape[0] for p in pages)
        canvas = Image.new("RGB", (sum(p.shape[1] for p in pages), height + 25), (255, 255, 255))
        draw, left = ImageDraw.Draw(canvas), 0
        for page, caption in zip(pages, captions):
            canvas.paste(Image.fromarray(np.ascontiguousarray(page[:, :, ::-1])), (left, 0))
            draw.text((left + 10, height + 2), caption, fill=(0, 0, 0))
            left += page.shape[1]
        return canvas

    def save_to_img(self, save_path: str | os.PathLike) -> list[Path]:
        """Write ``img`` as PaddleOCR 3.x's ``res.save_to_img`` does: to ``save_path`` when it names
        an image file (the first picture only), else each picture into that folder as
        ``<input stem>[_<page_index>]_<name><suffix>``, the input's suffix where it is an image's
        that Pillow writes, else ``.png``. Returns the paths written. Written whole or not at all:
        a suffix Pillow cannot write is an ``OutputFormatError`` listing those it can, a path that
        cannot be written an ``OutputError`` saying why."""
        outputs = self._img_outputs(save_path)
        write_outputs(outputs)
        return [path for path, _ in outputs]

    def _img_outputs(self, save_path) -> list[tuple[Path, bytes]]:
        """(each file ``save_to_img(save_path)`` writes, its bytes), checked before drawing."""
        path = output_path(save_path)
        if _is_image_file(path):
            names = {path: None}  # the first picture
        else:
            suffix = Path(self.source).suffix if self.source is not None else ""
            if not (_is_image_file(self.source or "") and suffix.lower() in _pil_formats()):
                suffix = ".png"
            names = {path / f"{self._saved_stem()}_{name}{suffix}": name for name in self._img_names()}
        for target in names:
            if target.suffix.lower() not in _pil_formats():
                raise OutputFormatError(target, f"Pillow cannot write {target.suffix!r} images; it writes "
                                                f"{', '.join(sorted(_pil_formats()))}")
            why = blocked_output(target)
            if why is not None:
                raise OutputError(target, why)
        images = self.img
        return [(target, _encoded(target, images[name] if name is not None else next(iter(images.values()))))
                for target, name in names.items()]

    def _img_names(self) -> list[str]:
        """The keys of ``img``, without drawing it."""
        return ["ocr_res_img", *(["preprocessed_img"] if self.doc_preprocessor is not None else [])]

    def save_all(self, save_path: str | os.PathLike) -> list[Path]:
        """PaddleOCR 3.x's ``res.save_all(path)``: ``save_to_json(path)``, then ``save_to_img(path)``,
        with their file names. Returns the paths written; all of them are written or none."""
        outputs = [self._json_output(save_path), *self._img_outputs(save_path)]
        write_outputs(outputs)
        return [path for path, _ in outputs]

    @property
    def str(self) -> dict:
        """PaddleOCR 3.x's ``res.str``: ``{"res": fields}``, the ``json`` fields with ``dt_polys``,
        ``rec_polys``, ``rec_boxes``, ``rec_scores`` and ``textline_orientation_angles`` as numpy
        arrays and ``text_word_boxes`` as one array per line (what ``print()`` shows); seal text's
        polygons, of as many points as each has, stay lists of arrays (paddlex's too)."""
        fields = self.to_paddleocr()
        shown = dict(fields)
        listed = ("text_word_boxes", *(("dt_polys", "rec_polys") if self.text_type == "seal" else ()))
        for key in ("dt_polys", "textline_orientation_angles", "rec_scores", "rec_polys", "rec_boxes",
                    "text_word_boxes"):
            if key in fields:
                value = self._field(key, fields)
                shown[key] = value if key in listed else np.array(value)
        return {"res": shown}

    def print(self, json_format: bool = False, indent: int = 4, ensure_ascii: bool = False) -> None:
        """PaddleOCR 3.x's ``res.print()``: ``str`` with its arrays shortened as paddlex prints them,
        to stdout (paddlex logs it, to stderr); ``json_format=True``: the ``json``."""
        if json_format:
            print(json.dumps(self.json, indent=indent, ensure_ascii=ensure_ascii))
            return
        with np.printoptions(threshold=1, edgeitems=1):
            print(self.str)

    def _saved_stem(self) -> str:
        """The input's file stem, with ``_<page_index>`` for a page; an image given without a
        path gets a timestamp and a random number (paddlex's naming), kept for this result."""
        if self.source is None:
            if not hasattr(self, "_unnamed"):
                self._unnamed = f"{int(time.time())}_{random.randint(1000, 9999)}"
            return self._unnamed
        stem = Path(os.fspath(self.source)).stem
        return stem if self.page_index is None else f"{stem}_{self.page_index}"

    def to_paddleocr(self) -> dict:
        """PaddleOCR 3.x's result as its ``res`` JSON holds it (``result.json["res"]``)."""
        out = {
            "input_path": self.source,
            "page_index": self.page_index,
            "model_settings": self.settings.get("model_settings", {}),
        }
        if self.doc_preprocessor is not None:
            out["doc_preprocessor_res"] = {"input_path": None, "page_index": None, **self.doc_preprocessor}
        out.update({
            "dt_polys": [[[int(x), int(y)] for x, y in p] for p in self.dt_polys],
            "text_det_params": self.settings.get("text_det_params", {}),
            "text_type": self.text_type,
            "textline_orientation_angles": list(self.textline_orientation_angles),
            "text_rec_score_thresh": self.settings.get("text_rec_score_thresh", 0.0),
            "return_word_box": self.text_word is not None,
            "rec_texts": self.texts,
            "rec_scores": [float(line.score) for line in self.lines],
            "rec_polys": self.rec_polys,
            "rec_boxes": self.rec_boxes,
        })
        if not (self.dt_polys or self.textline_orientation_angles or self.lines):
            # paddlex sets textline_orientation_angles only on a page where something was detected
            del out["textline_orientation_angles"]
        if self.text_word is not None:
            out["text_word_boxes"] = self.text_word_boxes
            out["text_word"] = [list(words) for words in self.text_word]
        return out
