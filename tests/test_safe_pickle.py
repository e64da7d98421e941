"""The restricted unpickler: plain data and numeric arrays load; nothing else ever runs."""

from __future__ import annotations

import builtins
import collections
import functools
import os
import pickle
import subprocess
import time

import numpy as np
import pytest

from converter.errors import FormatError, UnsafePickleError
from converter.readers import safe_pickle
from converter.readers.pdparams import read_info, read_pdparams

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


class Reduce:
    """Pickles as ``fn(*args)``: the classic payload."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


class Plain:  # an arbitrary user class: pickled through copyreg / its module
    def __init__(self):
        self.x = 1


def _payloads(marker):
    cmd = f"touch {marker}"
    return {
        "os.system": Reduce(os.system, (cmd,)),
        "subprocess.Popen": Reduce(subprocess.Popen, (["touch", str(marker)],)),
        "builtins.eval": Reduce(builtins.eval, (f"open({str(marker)!r}, 'w')",)),
        "builtins.exec": Reduce(builtins.exec, (f"open({str(marker)!r}, 'w')",)),
        "functools.partial": Reduce(functools.partial(os.system, cmd), ()),
        "nested in a dict": {"w": np.zeros(2, np.float32), "x": Reduce(os.system, (cmd,))},
        "user class": Plain(),
        "collections.Counter": collections.Counter(a=1),
    }


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_hostile_payloads_refused_and_never_run(tmp_path, protocol):
    marker = tmp_path / "pwned"
    for label, obj in _payloads(marker).items():
        f = tmp_path / f"evil_{protocol}.pdparams"
        f.write_bytes(pickle.dumps(obj, protocol=protocol))
        with pytest.raises(UnsafePickleError) as ei:
            safe_pickle.load(f)
        msg = str(ei.value)
        assert msg.startswith(str(f)), label
        assert "asks for" in msg, label
        assert not marker.exists(), f"payload {label} ran"


def test_error_names_the_global(tmp_path):
    f = tmp_path / "x.pdparams"
    f.write_bytes(pickle.dumps(Reduce(os.system, ("true",)), protocol=2))
    with pytest.raises(UnsafePickleError, match=r"posix\.system|nt\.system"):
        read_pdparams(f)
    f.write_bytes(pickle.dumps(Reduce(subprocess.Popen, (["true"],)), protocol=4))
    with pytest.raises(UnsafePickleError, match=r"subprocess\.Popen"):
        read_pdparams(f)


def test_handwritten_getattr_chain_refused(tmp_path):
    marker = tmp_path / "pwned"
    # getattr(__import__('os'), 'system')('touch marker'), protocol 0 text
    evil = (
        b"c__builtin__\ngetattr\n(c__builtin__\n__import__\n(S'os'\ntRS'system'\ntR"
        b"(S'touch " + str(marker).encode() + b"'\ntR."
    )
    with pytest.raises(UnsafePickleError, match="getattr"):
        safe_pickle.loads(evil, "evil.pkl")
    # the same through STACK_GLOBAL (protocol 4) and through posix directly
    evil4 = b"\x80\x04\x8c\x05posix\x8c\x06system\x93\x8c\x04true\x85R."
    with pytest.raises(UnsafePickleError, match=r"posix\.system"):
        safe_pickle.loads(evil4, "evil.pkl")
    assert not marker.exists()


def test_allowed_globals_cannot_be_misused():
    # numpy.ndarray may only be handed to _reconstruct, never called (it would allocate)
    call_ndarray = b"\x80\x02cnumpy\nndarray\nJ\x00\x00\x00\x40\x85\x85R."
    with pytest.raises(UnsafePickleError, match="numpy.ndarray"):
        safe_pickle.loads(call_ndarray, "x")
    # _reconstruct of something other than ndarray
    rec_other = b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\ndtype\nK\x00\x85C\x01b\x87R."
    with pytest.raises(UnsafePickleError, match="other than numpy.ndarray"):
        safe_pickle.loads(rec_other, "x")
    # BUILD (__setstate__) on an allowed global itself
    build_on_global = b"\x80\x02cnumpy\nndarray\n}b."
    with pytest.raises(UnsafePickleError, match="state"):
        safe_pickle.loads(build_on_global, "x")
    # BUILD on an OrderedDict result (a plain dict: no __setstate__, no __dict__)
    build_on_dict = b"\x80\x02ccollections\nOrderedDict\n)R}X\x09__class__K\x01sb."
    with pytest.raises(FormatError):
        safe_pickle.loads(build_on_dict, "x")
    # _codecs.encode only turns latin1 text into bytes
    with pytest.raises(UnsafePickleError, match="_codecs.encode"):
        safe_pickle.loads(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x06\x00\x00\x00base64\x86R.", "x")
    # a holder of an allowed global is not data
    with pytest.raises(FormatError, match="numpy.dtype itself"):
        safe_pickle.loads(b"\x80\x02cnumpy\ndtype\n.", "x")


def test_dtype_state_cannot_touch_numpy_builtins():
    # dtype('f4', False, copy=False) + BUILD '>' would flip numpy's shared float32 descriptor
    evil = pickle.dumps(np.dtype(">f4"), protocol=2).replace(b"\x89\x88\x87", b"\x89\x89\x87")
    assert evil != pickle.dumps(np.dtype(">f4"), protocol=2)
    with pytest.raises(FormatError):  # a bare dtype is not data
        safe_pickle.loads(evil, "x")
    assert np.dtype("f4").byteorder == "=" and np.dtype(np.float32).isnative


@pytest.mark.parametrize(
    "arr",
    [np.array([1, "a"], dtype=object), np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]),
     np.array(["ab"]), np.zeros(2, dtype="M8[s]")],
    ids=["object", "structured", "unicode", "datetime"],
)
def test_non_numeric_arrays_refused(arr):
    for p in PROTOCOLS:
        with pytest.raises(UnsafePickleError, match="numpy dtype"):
            safe_pickle.loads(pickle.dumps({"w": arr}, protocol=p), "x")


def test_persistent_ids_and_out_of_band_buffers_refused():
    import io

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return "ext" if obj == "hook" else None

    buf = io.BytesIO()
    P(buf, protocol=2).dump({"a": "hook"})
    with pytest.raises(UnsafePickleError, match="persistent"):
        safe_pickle.loads(buf.getvalue(), "x")
    oob = pickle.dumps(pickle.PickleBuffer(b"abcd"), protocol=5, buffer_callback=lambda b: False)
    with pytest.raises(FormatError):
        safe_pickle.loads(oob, "x")


ARRAYS = {
    "f32": np.arange(12, dtype=np.float32).reshape(3, 4),
    "big_endian": np.arange(6, dtype=">f4").reshape(2, 3),
    "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    "empty": np.zeros((0, 5), np.int64),
    "bool": np.array([True, False]),
    "f16": np.ones(3, np.float16),
    "c64": np.array([1 + 2j], np.complex64),
    "u8": np.arange(5, dtype=np.uint8),
    "zero_d": np.array(2.5),
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_plain_data_and_arrays_load(protocol):
    obj = {
        **ARRAYS,
        "scalar": np.float32(3.0),
        "od": collections.OrderedDict(a=1),
        "nested": [1, (2.5, "x"), {"b": b"\x00\xff", "n": None, "t": True}],
        "bytes0": b"",
    }
    out = safe_pickle.loads(pickle.dumps(obj, protocol=protocol), "x")
    for k, a in ARRAYS.items():
        got = out[k]
        assert isinstance(got, np.ndarray) and got.shape == a.shape, k
        assert got.dtype == a.dtype.newbyteorder("=") and got.dtype.isnative, k
        assert got.flags.c_contiguous and got.flags.writeable and got.flags.owndata, k
        np.testing.assert_array_equal(got, a)
    assert out["scalar"] == np.float32(3.0) and type(out["scalar"]) is np.float32
    assert out["od"] == {"a": 1}
    assert out["nested"] == [1, (2.5, "x"), {"b": b"\x00\xff", "n": None, "t": True}]
    assert out["bytes0"] == b""


def test_truncated_pickle_at_every_offset():
    data = pickle.dumps({"a": np.arange(4, dtype=np.float32), "b": [1, "x"]}, protocol=2)
    for n in range(len(data)):
        with pytest.raises(FormatError):
            safe_pickle.loads(data[:n], "cut.pkl")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x02",
        b"garbage that is not a pickle",
        b"\x80\x09.",  # unknown protocol
        b"\x80\x04\x8e" + (1 << 62).to_bytes(8, "little") + b"xx.",  # BINBYTES8: 4 EiB claimed
        b"\x80\x04\x8d" + (1 << 40).to_bytes(8, "little") + b"xx.",  # BINUNICODE8: 1 TiB claimed
        b"\x80\x02" + b"]" * 5000 + b"a" * 4999 + b".",  # lists nested 5000 deep
        b"\x80\x02]q\x00h\x00a.",  # a list containing itself: fine as data, must not hang
        b"\x80\x02}X\x01\x00\x00\x00aK\x01s0.",  # POP leaves an empty stack at STOP
        b"\x80\x02K\x01)R.",  # REDUCE on an int
    ],
)
def test_malformed_pickles_give_format_error(data):
    t = time.perf_counter()
    try:
        safe_pickle.loads(data, "bad.pkl")
    except FormatError as e:
        assert str(e).startswith("bad.pkl")
    assert time.perf_counter() - t < 2


def test_array_state_is_validated():
    base = pickle.dumps(np.arange(3, dtype=np.float32), protocol=2)
    # claim a huge shape over 12 bytes of data: refused before any allocation
    huge = base.replace(b"K\x03\x85", b"\x8a\x05\x00\x00\x00\x00\x01\x85")
    assert huge != base
    t = time.perf_counter()
    with pytest.raises(FormatError, match="needs"):
        safe_pickle.loads(huge, "x")
    assert time.perf_counter() - t < 1


class _SharedBytesArray:
    """Pickles as numpy writes an array, but every instance with the same bytes object: pickle
    memoizes it, so the file holds it once while each array would copy it."""

    raw = b"\0" * (1 << 20)

    def __reduce__(self):
        core = np._core if hasattr(np, "_core") else np.core  # numpy 2 / 1.x
        return (core.multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                (1, (len(self.raw) // 4,), np.dtype("f4"), False, self.raw))


def test_arrays_sharing_one_memoized_buffer_are_refused():
    # 64 arrays of 1 MB from a 1 MB file: a few hundred would take gigabytes.
    data = pickle.dumps({f"k{i}": _SharedBytesArray() for i in range(64)}, protocol=4)
    assert len(data) < 2 << 20
    with pytest.raises(FormatError, match="arrays hold more bytes than the file"):
        safe_pickle.loads(data, "amp.pdparams")
    one = safe_pickle.loads(pickle.dumps({"k": _SharedBytesArray()}, protocol=4), "one.pdparams")
    assert one["k"].shape == (1 << 18,)  # one such array is fine: its bytes are in the file


def test_validators_on_loaded_structure(tmp_path):
    f = tmp_path / "m.pdparams"
    f.write_bytes(pickle.dumps([np.zeros(2)], protocol=2))
    with pytest.raises(FormatError, match="expected a dict"):
        read_pdparams(f)
    f.write_bytes(pickle.dumps({"w": "text"}, protocol=2))
    with pytest.raises(FormatError, match="not a tensor"):
        read_pdparams(f)
    f.write_bytes(pickle.dumps({"StructuredToParameterName@@": {"w": "p"}}, protocol=2))
    with pytest.raises(FormatError, match="no tensors"):
        read_pdparams(f)
    f.write_bytes(pickle.dumps({"StructuredToParameterName@@": {}, "w": np.ones(2, np.float32)}, protocol=2))
    assert list(read_pdparams(f)) == ["w"]
    i = tmp_path / "inference.pdiparams.info"
    i.write_bytes(pickle.dumps({"conv2d_0.w_0": {"structured_name": 3}}, protocol=2))
    with pytest.raises(FormatError, match="structured name"):
        read_info(i)
    i.write_bytes(pickle.dumps({"conv2d_0.w_0": {"structured_name": "conv.weight"}}, protocol=2))
    assert read_info(i) == {"conv2d_0.w_0": "conv.weight"}
