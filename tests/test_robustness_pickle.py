"""Issue 8, pickles end to end: a corpus of hostile ``.pdparams`` and ``.pdiparams.info``
files is refused by ``ptocr-convert`` and ``ptocr.load`` (exit code 2 / PtocrError) and
the payload never runs: each payload would create a marker file, which must not exist.

test_safe_pickle.py covers the unpickler itself; this adds the entry points and the
classes it lacks (EXT opcodes through copyreg's extension registry, INST/OBJ opcodes,
pickles nested in pickles, PROTO switches mid-stream, numpy's own gadgets, attribute
chains, BUILD on allowed globals).
"""

from __future__ import annotations

import builtins
import copyreg
import functools
import operator
import os
import pickle
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import ptocr
from converter.cli import EXIT_BAD_INPUT
from converter.cli import main as convert_main
from ptocr.errors import PtocrError
from test_readers import tiny_params, tiny_program


class Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


class ReduceEx:  # __reduce_ex__ instead of __reduce__, and a state for BUILD
    def __init__(self, marker):
        self.marker = marker

    def __reduce_ex__(self, protocol):
        return os.system, (f"touch {self.marker}",), {"x": 1}


def _reduce_payloads(marker: Path) -> dict[str, object]:
    m = str(marker)
    code = f"open({m!r}, 'w').close()"
    inner = pickle.dumps(Reduce(os.system, (f"touch {m}",)), protocol=2)
    return {
        "os.system": Reduce(os.system, (f"touch {m}",)),
        "subprocess.Popen": Reduce(subprocess.Popen, (["touch", m],)),
        "subprocess.check_output": Reduce(subprocess.check_output, (["touch", m],)),
        "builtins.eval": Reduce(builtins.eval, (code,)),
        "builtins.exec": Reduce(builtins.exec, (code,)),
        "builtins.open": Reduce(builtins.open, (m, "w")),
        "builtins.__import__": Reduce(builtins.__import__, ("os",)),
        "functools.partial": Reduce(functools.partial(os.system, f"touch {m}"), ()),
        "operator.methodcaller": Reduce(operator.methodcaller("system", f"touch {m}"), ()),
        "pickle.loads of a nested pickle": Reduce(pickle.loads, (inner,)),
        "__reduce_ex__ with state": ReduceEx(marker),
        "payload as a tensor value": {"backbone.w": Reduce(os.system, (f"touch {m}",))},
        "payload as a dict key": {Reduce(os.system, (f"touch {m}",)): 1},
        "payload in .info entry": {"conv_w": {"structured_name": Reduce(os.system, (f"touch {m}",))}},
    }


def _raw_payloads(marker: Path) -> dict[str, bytes]:
    """Hand-written opcode sequences pickle.dumps cannot produce."""
    m = str(marker).encode()
    touch = b"touch " + m
    return {
        # getattr(__import__('os'), 'system')('touch m'), protocol 0
        "getattr chain": b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR(S'"
        + touch + b"'\ntR.",
        # INST: instantiate posix.system('touch m') (protocol 0/1 class call)
        "INST opcode": b"(S'" + touch + b"'\nios\nsystem\n.",
        # OBJ: same through a class on the stack
        "OBJ opcode": b"(cos\nsystem\nS'" + touch + b"'\no.",
        # PROTO 2 header, then a protocol-4 STACK_GLOBAL payload after a second PROTO
        "PROTO switch mid-stream": b"\x80\x02}\x80\x04\x8c\x02os\x8c\x06system\x93\x8c"
        + bytes([len(touch)]) + touch + b"\x85R.",
        # numpy's runstring executes code: allowed module, forbidden name
        "numpy runstring": b"cnumpy.testing._private.utils\nrunstring\n(S\"open('" + m
        + b"', 'w')\"\n}tR.",
        # BUILD with a __dict__ on an allowed global (would set attributes on numpy)
        "BUILD on numpy.dtype": b"\x80\x02cnumpy\ndtype\n}X\x04\x00\x00\x00evilK\x01sb.",
        # _reconstruct handed os.system as the class
        "_reconstruct(os.system)": b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncos\nsystem\nK\x00\x85C\x01b\x87R.",
    }


# EXT1 0x7f: the unpickler looks up copyreg's extension registry and calls find_class
EXT_CODE = 0x7F


@pytest.fixture
def ext_registered():
    copyreg.add_extension("os", "system", EXT_CODE)
    yield
    copyreg.remove_extension("os", "system", EXT_CODE)


def _ext_payload(marker: Path) -> bytes:
    touch = f"touch {marker}".encode()
    return b"\x80\x02\x82" + bytes([EXT_CODE]) + b"X" + len(touch).to_bytes(4, "little") + touch + b"\x85R."


def _corpus(marker: Path) -> dict[str, bytes]:
    out = {}
    for label, obj in _reduce_payloads(marker).items():
        for p in range(pickle.HIGHEST_PROTOCOL + 1):
            try:
                out[f"{label} / protocol {p}"] = pickle.dumps(obj, protocol=p)
            except (pickle.PicklingError, TypeError, AttributeError):
                pass  # e.g. methodcaller below protocol 2
    out.update(_raw_payloads(marker))
    out["EXT1 via copyreg registry"] = _ext_payload(marker)
    return out


def _tiny_folder(folder: Path, info: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "inference.pdmodel").write_bytes(tiny_program())
    (folder / "inference.pdiparams").write_bytes(tiny_params())
    (folder / "inference.pdiparams.info").write_bytes(info)
    return folder


def test_corpus_is_big_enough(tmp_path):
    assert len(_corpus(tmp_path / "m")) >= 80


@pytest.mark.parametrize("as_file", ["best_accuracy.pdparams", "inference.pdiparams.info"])
def test_hostile_pickles_refused_by_ptocr_convert(tmp_path, ext_registered, as_file):
    marker = tmp_path / "pwned"
    runner = CliRunner()
    for i, (label, data) in enumerate(_corpus(marker).items()):
        d = tmp_path / f"case{i}"
        if as_file.endswith(".info"):
            src = _tiny_folder(d, data)
        else:
            d.mkdir()
            src = d / as_file
            src.write_bytes(data)
        dst = d / "out.safetensors"
        res = runner.invoke(convert_main, ["--src", str(src), "--dst", str(dst)])
        assert res.exit_code == EXIT_BAD_INPUT, f"{label}: exit {res.exit_code}\n{res.output}"
        assert "Traceback" not in res.output and as_file in res.stderr, f"{label}: {res.stderr}"
        assert not dst.exists(), label
        assert not marker.exists(), f"payload {label!r} ran"


@pytest.mark.parametrize("as_file", ["best_accuracy.pdparams", "inference.pdiparams.info"])
def test_hostile_pickles_refused_by_ptocr_load(tmp_path, ext_registered, as_file):
    marker = tmp_path / "pwned"
    for i, (label, data) in enumerate(_corpus(marker).items()):
        d = tmp_path / f"case{i}"
        if as_file.endswith(".info"):
            src = _tiny_folder(d, data)
        else:
            d.mkdir()
            src = d / as_file
            src.write_bytes(data)
        with pytest.raises(PtocrError) as ei:
            ptocr.load(src)
        assert as_file in str(ei.value), f"{label}: {ei.value}"
        assert not marker.exists(), f"payload {label!r} ran"


def test_control_the_payloads_do_run_when_unpickled_normally(tmp_path, ext_registered):
    # Proves the corpus is live: plain pickle.loads runs these, so the marker check above
    # can fail. (A sample that only touches the marker, nothing else.)
    marker = tmp_path / "pwned"
    corpus = _corpus(marker)
    for label in ("os.system / protocol 2", "builtins.exec / protocol 4", "INST opcode",
                  "PROTO switch mid-stream", "EXT1 via copyreg registry", "getattr chain"):  # fmt: skip
        try:
            pickle.loads(corpus[label])
        except Exception:
            pass
        assert marker.exists(), f"{label} is not a working payload"
        marker.unlink()
