"""Ray bulk OCR where a worker node cannot see the images the driver sees (a mount missing on
that node, relative paths read from another folder there), told apart from a list with stale
paths (files deleted since), which stay per-image errors as on one machine.

The stand-in for "that node lacks the mount" is a mount point whose content depends on the
process that looks: ``mnt`` is a symlink to ``/proc/self/cwd/share``, so a process whose folder
has ``share/`` sees the images under ``mnt``, and one whose folder has none finds nothing there,
as on a node where the mount is missing. The driver works in a folder with ``share/``; the
"blind" build moves its actor to an empty folder. Stand-in pipelines, no models; one local
two-CPU cluster for the module (skipped without ray; Linux's /proc)."""

from __future__ import annotations

import json
import os
import socket
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from conftest import local_ray_cluster

from ptocr.errors import PtocrError
from ptocr.result import Line, OCRResult
from ptocr.transforms import load_image

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'ptocr[ray]')")
if not os.path.isdir("/proc/self/cwd"):
    pytest.skip("the stand-in mount needs Linux's /proc/self/cwd", allow_module_level=True)

IMAGES = ("a.png", "b.png", "c.png")


class _Named:
    """A pipeline with only ``read``: one line, the file's name; an ``ImageError`` for a file
    that is not there (``load_image``'s), as a real pipeline's."""

    def read(self, image):
        load_image(image)
        name = Path(image).name if isinstance(image, (str, os.PathLike)) else "bytes"
        return OCRResult([Line([[0, 0], [1, 0], [1, 1], [0, 1]], name, 1.0, None)], source=image)


def _seeing() -> _Named:
    return _Named()


def _blind(folder: str) -> _Named:
    """Built in an actor that then works in ``folder`` (no ``share/``): ``mnt`` is empty for it."""
    os.chdir(folder)
    return _Named()


@pytest.fixture(scope="module")
def cluster():
    with local_ray_cluster():
        yield


@pytest.fixture
def place(tmp_path, monkeypatch) -> Path:
    """``tmp_path`` with the driver in ``work/`` (which has ``share/imgs/*.png``), the mount
    point ``mnt`` seen through the looking process's folder, ``real/b.png`` that every process
    sees, and the empty ``blind/``."""
    import cv2

    work = tmp_path / "work"
    (work / "share" / "imgs").mkdir(parents=True)
    for name in IMAGES:
        cv2.imwrite(str(work / "share" / "imgs" / name), np.full((16, 32, 3), 255, np.uint8))
    (work / "imgs").symlink_to(work / "share" / "imgs")  # for relative paths from the driver's folder
    (tmp_path / "mnt").symlink_to("/proc/self/cwd/share")
    (tmp_path / "real").mkdir()
    cv2.imwrite(str(tmp_path / "real" / "b.png"), np.full((16, 32, 3), 255, np.uint8))
    (tmp_path / "blind").mkdir()
    monkeypatch.chdir(work)
    assert (tmp_path / "mnt" / "imgs" / "a.png").is_file()  # the driver sees the mount
    return tmp_path


@pytest.fixture
def in_order():
    """Rows in input order (the script's own DataContext, which run_on_ray's dataset copies)."""
    options = ray.data.DataContext.get_current().execution_options
    before = options.preserve_order
    options.preserve_order = True
    yield
    options.preserve_order = before


def _run(place: Path, names: list[str], build) -> int:
    from ptocr import bulk_cli

    return bulk_cli.run(names, build, bulk_out=str(place / "r.jsonl"), bulk_ray="local", bulk_batch_size=1)


def _lines(place: Path) -> dict:
    path = place / "r.jsonl"
    lines = [json.loads(s) for s in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
    by_name = {d["image"]: d for d in lines}
    assert len(by_name) == len(lines)  # each image once
    return by_name


def test_a_node_without_the_mount_stops_the_run_and_a_rerun_reads_its_images(cluster, place, in_order):
    mounted = [str(place / "mnt" / "imgs" / n) for n in IMAGES]
    stale = [str(place / "real" / "gone.png"), "mock:///bucket/gone.png"]  # missing for the driver too
    names = stale + mounted
    with pytest.raises(PtocrError) as raised:
        _run(place, names, partial(_blind, str(place / "blind")))
    message = str(raised.value)
    assert "\n" not in message and "Traceback" not in message
    assert socket.gethostname() in message and str(place / "mnt") in message
    # The stale paths came first: their error lines are their results; nothing of the mount's.
    by_name = _lines(place)
    assert sorted(by_name) == sorted(stale) and all(by_name[n]["error"] for n in stale)
    # The mount fixed (an actor that sees it): the rerun reads what the blind node could not.
    assert _run(place, names, _seeing) == 0
    by_name = _lines(place)
    assert sorted(by_name) == sorted(names)
    assert [by_name[n]["lines"][0]["text"] for n in mounted] == list(IMAGES)


def test_relative_paths_read_from_another_folder_on_a_node_stop_the_run(cluster, place, in_order):
    # gone.png is missing on the driver too (and what the node lacks is not here either): its
    # own error, as on one machine; imgs/a.png is here, so the node reads from the wrong folder.
    with pytest.raises(PtocrError) as raised:
        _run(place, ["gone.png", "imgs/a.png", "imgs/b.png"], partial(_blind, str(place / "blind")))
    message = str(raised.value)
    assert socket.gethostname() in message and str(place / "blind") in message
    assert f"relative paths are read from {place / 'work'}" in message
    by_name = _lines(place)  # no line for imgs/: an error line there would be skipped by a rerun
    assert sorted(by_name) == ["gone.png"] and "gone.png" in by_name["gone.png"]["error"]


def test_the_documented_map_batches_call_names_what_its_node_lacks(cluster, place):
    # Direct map_batches users: no driver check, but each error row says what the node lacks.
    from ptocr.ray_data import OCRBatchPredictor

    gone_folder = str(place / "deleted" / "x.png")
    names = [str(place / "mnt" / "imgs" / "a.png"), str(place / "real" / "gone.png"), gone_folder,
             "mock:///bucket/gone.png", str(place / "real" / "b.png")]
    ds = ray.data.from_items([{"image": n} for n in names], override_num_blocks=1)
    ds = ds.map_batches(OCRBatchPredictor, fn_constructor_args=(partial(_blind, str(place / "blind")),),
                        batch_size=8, compute=ray.data.ActorPoolStrategy(size=1))
    rows = {r["image"]: r for r in ds.take_all()}
    assert sorted(rows) == sorted(names)
    assert {n: rows[n]["missing"] for n in names} == {
        names[0]: str(place / "mnt"),  # the mount point: nothing there on this node
        names[1]: names[1],  # its folder is there, the file is not
        names[2]: str(place / "deleted"),
        names[3]: "",  # another store's missing object: the image's own error
        names[4]: "",  # read
    }
    assert all(rows[n]["error"] for n in names[:4]) and rows[names[4]]["error"] == ""
    assert {r["node"] for r in rows.values()} == {socket.gethostname()}


def test_a_node_without_the_drivers_folder_names_it_for_relative_paths(tmp_path):
    # An actor whose node lacks the driver's folder (cwd) stays in its raylet's: what the node
    # lacks is that folder, not a path under the raylet's.
    from ptocr.ray_data import OCRBatchPredictor

    here = os.getcwd()
    predictor = OCRBatchPredictor(_seeing, cwd=str(tmp_path / "absent" / "work"))
    assert os.getcwd() == here
    rows = predictor({"image": np.array(["imgs/a.png"], dtype=object)})
    assert rows["error"][0] and list(rows["missing"]) == [str(tmp_path / "absent")]
