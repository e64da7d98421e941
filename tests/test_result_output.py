"""Where a result's save methods cannot write: OCRResult.save_visualization (the 2.x pipeline's
result) and OCR3Result.save_to_json / save_to_img / save_all (paddlex's). Each failure is a
PtocrError naming the output and why (an OutputError, also an OSError as the OS's own was; a
format an OutputFormatError, also a ValueError), and an output is written whole or not at all.
Real PP-OCRv5 mobile det + rec (and the textline model for OCR3) of ../shared on one scene."""

from __future__ import annotations

import dataclasses
import errno
import json
import sys
import warnings

import cv2
import numpy as np
import pytest
from conftest import intra_op_threads, v5_ocr3

from ptocr import atomic
from ptocr.atomic import OutputError, OutputFormatError
from ptocr.errors import PtocrError
from ptocr.pipeline import OCR
from ptocr.visualize import FontError


pytestmark = pytest.mark.usefixtures("loopback_only")


@pytest.fixture(autouse=True)
def _quiet_fonts():
    with warnings.catch_warnings():  # without a CJK font a warning is expected, not an error
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def scene_path(shared_dir):
    return shared_dir / "images" / "scenes" / "ger_1.jpg"


@pytest.fixture(scope="module")
def res(v5_models, scene_path):
    """An OCR3Result, as a 3.x script gets it."""
    with intra_op_threads(1):
        (result,) = v5_ocr3(v5_models).predict(str(scene_path))
    assert len(result) > 3
    return result


@pytest.fixture(scope="module")
def result2(v5_models, scene_path):
    """An OCRResult of the 2.x pipeline."""
    with intra_op_threads(1):
        result = OCR(v5_models["det"], v5_models["rec"])(scene_path)
    assert type(result).__name__ == "OCRResult" and len(result) > 3
    return result


@pytest.fixture
def out(tmp_path):
    """A folder holding a regular file ``afile`` and a folder ``d.json``."""
    (tmp_path / "afile").write_text("keep", encoding="utf-8")
    (tmp_path / "d.json").mkdir()
    return tmp_path


def _refused(call, kind, *words):
    """``call()`` raises ``kind`` (a PtocrError) whose one-line message holds ``words``."""
    with pytest.raises(kind) as caught:
        call()
    message = str(caught.value)
    assert isinstance(caught.value, PtocrError) and "\n" not in message
    for word in words:
        assert word in message, message
    return caught.value


def _entries(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_save_to_json_where_a_file_or_folder_is_in_the_way(res, out):
    """A regular file where a folder is needed (was FileExistsError) and a folder named like the
    .json file (was IsADirectoryError): OutputError naming the path and what is in the way;
    nothing else is made and the file in the way is untouched."""
    before = _entries(out)
    e = _refused(lambda: res.save_to_json(out / "afile" / "x.json"), OutputError,
                 f"cannot write {out / 'afile' / 'x.json'}", f"{out / 'afile'} is a file, not a folder")
    assert isinstance(e, OSError) and e.strerror == e.reason  # what the CLI's OSError handler prints
    _refused(lambda: res.save_to_json(out / "afile" / "sub" / "x.json"), OutputError, "afile is a file")
    _refused(lambda: res.save_to_json(out / "d.json"), OutputError, f"cannot write {out / 'd.json'}",
             "it is a folder")
    # A folder given as the folder to write into: <stem>_res.json in it, paddlex's naming.
    _refused(lambda: res.save_to_json(out / "afile"), OutputError, str(out / "afile" / "ger_1_res.json"),
             "is a file, not a folder")
    assert _entries(out) == before and (out / "afile").read_text(encoding="utf-8") == "keep"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc takes no new files on Linux only")
def test_a_folder_that_takes_no_files_names_the_output_not_the_temporary_file(res, result2):
    """/proc exists but takes no new file: OutputError naming the output and the folder (was a
    FileNotFoundError, for save_visualization naming its temporary file /proc/.v.png.XXXX.tmp)."""
    for call, name in ((lambda: res.save_to_json("/proc/x.json"), "/proc/x.json"),
                       (lambda: result2.save_visualization("/proc/v.png"), "/proc/v.png"),
                       (lambda: res.save_to_img("/proc/v.png"), "/proc/v.png")):
        e = _refused(call, OutputError, f"cannot write {name}: cannot create a file in /proc")
        assert ".tmp" not in str(e)


def test_save_to_img_refuses_a_suffix_pillow_cannot_write(res, out):
    """.svg and .heic are images to mimetypes (so paddlex's rule takes them as the file to write)
    but Pillow writes neither (was PIL's 'unknown file extension' ValueError): OutputFormatError,
    a ValueError, listing the suffixes it writes; nothing written."""
    before = _entries(out)
    for name in ("v.svg", "v.heic", "v.xbm"):  # .xbm: Pillow has a writer, for 1-bit pictures only
        e = _refused(lambda: res.save_to_img(out / name), OutputFormatError, f"cannot write {out / name}",
                     f"Pillow cannot write '{name[1:]}' images", ".jpg", ".png", ".webp")
        assert isinstance(e, ValueError) and ".xbm" not in str(e).split("writes")[1]
    assert _entries(out) == before


def test_save_to_img_and_save_all_into_a_file(res, out):
    """save_to_img / save_all given a regular file as the folder to write into, or a folder as the
    picture's name: OutputError naming the file paddlex's naming gives and what is in the way;
    save_all writes nothing at all, also where its JSON file would be its pictures' folder."""
    _refused(lambda: res.save_to_img(out / "afile"), OutputError,
             str(out / "afile" / "ger_1_ocr_res_img.jpg"), "is a file, not a folder")
    _refused(lambda: res.save_all(out / "afile"), OutputError, "is a file, not a folder")
    (out / "d.png").mkdir()
    _refused(lambda: res.save_to_img(out / "d.png"), OutputError, f"cannot write {out / 'd.png'}: it is a folder")
    # save_all("x.json"): the JSON is the file x.json, the pictures go into a folder x.json
    _refused(lambda: res.save_all(out / "x.json"), OutputError, f"cannot write {out / 'x.json'}",
             f"it would have to be a folder for {out / 'x.json' / 'ger_1_ocr_res_img.jpg'}")
    assert not (out / "x.json").exists()
    assert (out / "afile").read_text(encoding="utf-8") == "keep"


def test_save_visualization_refuses_a_suffix_opencv_cannot_write(result2, out):
    """.xyz: OpenCV raises cv2.error rather than returning False, so the ValueError was never
    reached; .exr (a writer for float images only) and .pbm (1-bit only) fail inside it:
    OutputFormatError (a ValueError) listing the suffixes it writes; nothing written."""
    before = _entries(out)
    for name in ("vis.xyz", "vis.exr", "vis.pbm"):
        e = _refused(lambda: result2.save_visualization(out / name), OutputFormatError,
                     f"cannot write {out / name}", "OpenCV cannot write", ".png", ".jpg")
        assert isinstance(e, ValueError)
    _refused(lambda: result2.save_visualization(out / "afile" / "v.png"), OutputError, "afile is a file")
    (out / "d.png").mkdir()
    _refused(lambda: result2.save_visualization(out / "d.png"), OutputError, "it is a folder")
    assert _entries(out) == [*before, "d.png"]
    # what it writes still works: no suffix -> .png, a suffix OpenCV writes as given
    assert cv2.imread(str(result2.save_visualization(out / "v"))).shape[1] == 2 * result2.image.shape[1]
    assert cv2.imread(str(result2.save_visualization(out / "v.jpg"))) is not None


def test_save_paths_that_name_no_file(res, result2):
    """None and a NUL in the name: an OutputError saying so, not Path's TypeError / os's ValueError."""
    _refused(lambda: res.save_to_json(None), OutputError, "a save path is a str or os.PathLike, not NoneType")
    e = _refused(lambda: result2.save_visualization("o/v\0.png"), OutputError, "cannot hold a NUL")
    assert "\0" not in str(e)


def test_an_unloadable_font_is_a_font_error(result2, out):
    """font= a missing file or a file that is no font: FontError naming it (was Pillow's OSError
    'cannot open resource' / 'unknown file format', which named no file)."""
    _refused(lambda: result2.save_visualization(out / "v.png", font=out / "none.ttf"), FontError,
             str(out / "none.ttf"), "no such file")
    _refused(lambda: result2.save_visualization(out / "v.png", font=out / "afile"), FontError,
             str(out / "afile"), "Pillow cannot load it")
    assert not (out / "v.png").exists()


class _DiskFull:
    """``open`` whose files take half of what is written, then fail as a full disk does."""

    def __init__(self, real):
        self.real = real

    def __call__(self, *args, **kwargs):
        f = self.real(*args, **kwargs)
        write = f.write

        def half_then_enospc(data):
            write(data[:len(data) // 2])
            f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        f.write = half_then_enospc
        return f


@pytest.mark.parametrize("kind", ["json", "img", "all", "vis"])
def test_a_failed_write_leaves_the_existing_output_whole(res, result2, tmp_path, monkeypatch, kind):
    """A write failing halfway (a full disk) leaves each existing output as it was and no
    temporary file, and says why; save_to_json / save_to_img wrote straight to the target."""
    old = {"json": b'{"old": 1}', "img": cv2.imencode(".png", res.image)[1].tobytes()}
    targets = {"json": [tmp_path / "ger_1_res.json"], "img": [tmp_path / "ger_1_ocr_res_img.jpg"],
               "all": [tmp_path / "ger_1_res.json", tmp_path / "ger_1_ocr_res_img.jpg"],
               "vis": [tmp_path / "v.png"]}[kind]
    for target in targets:
        target.write_bytes(old["json" if target.suffix == ".json" else "img"])
    call = {"json": lambda: res.save_to_json(tmp_path), "img": lambda: res.save_to_img(tmp_path),
            "all": lambda: res.save_all(tmp_path), "vis": lambda: result2.save_visualization(tmp_path / "v.png")}[kind]
    monkeypatch.setattr(atomic, "open", _DiskFull(open), raising=False)
    assert _refused(call, OutputError, f"cannot write {targets[0]}: No space left on device").errno == errno.ENOSPC
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(t.name for t in targets)
    for target in targets:
        assert target.read_bytes() == old["json" if target.suffix == ".json" else "img"]
    # and with room, the same call replaces them whole
    written = call()
    for target in targets:
        data = target.read_bytes()
        if target.suffix == ".json":
            assert json.loads(data) == json.loads(json.dumps(res.json["res"]))
        else:
            picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            assert picture.shape[1] == 2 * res.image.shape[1]
    assert written == (targets[0] if kind in ("json", "vis") else targets)


def test_folder_mode_names_png_where_pillow_cannot_write_the_input_suffix(res, tmp_path):
    """paddlex names a folder's pictures with the input's suffix when it is an image's; .xpm is one
    that Pillow reads but cannot write (it failed at the save): those pictures are .png."""
    moved = dataclasses.replace(res, source=str(tmp_path / "scan.xpm"))
    written = moved.save_to_img(tmp_path / "o")
    assert written == [tmp_path / "o" / "scan_ocr_res_img.png"]
    assert cv2.imread(str(written[0])).shape == (res.image.shape[0], 2 * res.image.shape[1], 3)
