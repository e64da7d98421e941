"""How ``BulkReader`` schedules its lanes (CPU): a lane that is free takes the next window while an
older one still runs, results still come out in input order, and the window that runs alone at the
end gets every intra-op thread. Checked on stand-in steps whose model calls wait on each other
(events, no timing), so the order of events is forced, not hoped for."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from conftest import intra_op_threads

from ptocr.bulk import BulkReader
from ptocr.bulk_steps import CropStage

WAIT_S = 20  # an event not set by then means the engine serialized what should run at once


class _Model:
    """A model call records (image id, stage, intra-op threads of the calling lane) and first
    waits for what ``gates`` names for that (id, stage)."""

    device = torch.device("cpu")

    def __init__(self, stage: str, calls: list, gates: dict, started: dict):
        self.stage, self.calls, self.gates, self.started = stage, calls, gates, started

    def forward(self, x: np.ndarray, _pin_memory: bool):
        ident = int(x.reshape(len(x), -1)[0, 0])
        self.calls.append((ident, self.stage, torch.get_num_threads()))
        self.started[(ident, self.stage)].set()
        gate = self.gates.get((ident, self.stage))
        if gate is not None and not gate.wait(WAIT_S):
            raise AssertionError(f"image {ident}'s {self.stage} call waited in vain: the lanes did not overlap")
        return x


class _Steps:
    """The shape of a pipeline's bulk steps: an image is its id; one crop per image."""

    def __init__(self, gates: dict | None = None):
        self.calls: list = []
        self.started = {(i, s): threading.Event() for i in range(8) for s in ("det", "rec")}
        self.finished = {i: threading.Event() for i in range(8)}  # assembled: through the models
        gates = {k: self.started[v] if isinstance(v, tuple) else self.finished[v] for k, v in (gates or {}).items()}
        self.crops_gate = {i: gate for (i, point), gate in gates.items() if point == "crops"}
        self.det = _Model("det", self.calls, gates, self.started)
        rec = _Model("rec", self.calls, gates, self.started)
        self.models = [self.det, rec]
        self.stages = [CropStage(rec, lambda crops: [([0], np.stack(crops))], lambda out: list(out), self._store)]

    def load(self, image):
        return np.full((1, 2, 2), float(image), np.float32), None

    def det_input(self, img):
        return img, None

    def boxes_and_crops(self, item, prob):
        ident = int(item.img[0, 0, 0])
        if ident in self.crops_gate and not self.crops_gate[ident].wait(WAIT_S):
            raise AssertionError(f"image {ident} waited in vain for another image to finish")
        item.crops = [prob]

    @staticmethod
    def _store(item, results):
        item.texts = results

    def assemble(self, item):
        ident = int(item.img[0, 0, 0])
        self.finished[ident].set()
        return ident


class _Pipeline:
    def __init__(self, steps):
        self.steps = steps

    def bulk_steps(self):
        return self.steps


@pytest.fixture
def two_threads():
    with intra_op_threads(2):
        yield


def test_a_free_lane_does_not_wait_for_the_oldest_window(two_threads):
    # Image 0's detector call returns only once image 2's has started: image 2 must go to the
    # lane that image 1 leaves while image 0 still runs.
    steps = _Steps(gates={(0, "det"): (2, "det")})
    reader = BulkReader(_Pipeline(steps), lanes=2)
    assert reader.batch_size == 1  # the CPU default: one image per window
    assert list(reader(range(4))) == [0, 1, 2, 3]


def test_the_window_left_alone_gets_every_thread(two_threads):
    # Image 0's detector call waits until image 1's has started: both images in flight, one
    # thread each. Image 0's crops wait until image 1 is through the models: image 0's
    # recognizer call is then all that is left, and gets both threads.
    steps = _Steps(gates={(0, "det"): (1, "det"), (0, "crops"): 1})
    assert list(BulkReader(_Pipeline(steps), lanes=2)(range(2))) == [0, 1]
    threads = {(ident, stage): n for ident, stage, n in steps.calls}
    assert threads == {(0, "det"): 1, (1, "det"): 1, (1, "rec"): 1, (0, "rec"): 2}


def test_one_image_runs_with_every_thread(two_threads):
    steps = _Steps()
    assert list(BulkReader(_Pipeline(steps), lanes=2)([5])) == [5]
    assert [n for _, _, n in steps.calls] == [2, 2]
