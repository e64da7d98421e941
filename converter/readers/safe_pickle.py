"""A restricted unpickler for Paddle's ``.pdparams`` / ``.pdiparams.info`` pickles.

Pickles can call any importable function, so ``find_class`` grants only what plain data
and numpy arrays need, and even those are never the real objects: each is a guard that
checks its arguments, and arrays and dtypes are built by us from validated parts
(``np.frombuffer`` over the pickled bytes). So

* no numpy code runs on attacker-chosen state (no ``ndarray.__setstate__``, no
  ``dtype.__setstate__`` that could mutate numpy's shared builtin dtypes);
* BUILD (``__setstate__``) can only reach our proxies, which validate their state, or
  plain containers, which have no ``__setstate__`` and no ``__dict__`` (BUILD fails);
* persistent ids and out-of-band buffers are refused;
* the arrays together may hold no more bytes than the pickle itself: each array's bytes are
  in the stream once, so a small file whose arrays all point at one memoized bytes object
  (a copy each, gigabytes) is refused;
* paddle.save's own reduces of tensors outside a state dict, ``tuple((name, ndarray))`` and
  ``eval('data', {'data': ndarray})``, are accepted in exactly those forms (nothing is
  evaluated: the guard returns the array), every other use of tuple/eval is refused.

Every other failure of a malformed pickle becomes ``FormatError`` naming the file.
"""

from __future__ import annotations

import contextvars
import io
import pickle
import pickletools
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from converter.errors import FormatError, UnsafePickleError

# numpy dtype strings a tensor may use (numpy pickles dtypes as dtype('<code>', False, True)).
_DTYPE_CODES = frozenset(
    "b1 i1 i2 i4 i8 u1 u2 u4 u8 f2 f4 f8 c8 c16 bool int8 int16 int32 int64 uint8 "
    "uint16 uint32 uint64 float16 float32 float64 complex64 complex128".split()
)
_MAX_DEPTH = 100  # nesting of plain containers; Paddle's are 1-2 deep
# Bytes the arrays of the pickle being loaded may still take (its length at the start).
_ARRAY_BUDGET: contextvars.ContextVar[list[int]] = contextvars.ContextVar("_ARRAY_BUDGET")


class _Guard:
    """Stands for an allowed global: callable only through a validating function."""

    __slots__ = ("qualname", "fn", "where")

    def __init__(self, qualname: str, fn: Callable | None, where: str):
        self.qualname, self.fn, self.where = qualname, fn, where

    def __call__(self, *args):
        if self.fn is None:
            raise UnsafePickleError(f"{self.where}: the pickle calls {self.qualname} directly")
        return self.fn(self.where, *args)

    def __setstate__(self, state):
        raise UnsafePickleError(f"{self.where}: the pickle sets the state of {self.qualname}")


class _DType:
    """Result of numpy.dtype(code, ...): a simple numeric dtype, byte order set by BUILD."""

    __slots__ = ("dtype", "built")

    def __init__(self, dtype: np.dtype):
        self.dtype, self.built = dtype, False

    def __setstate__(self, state):
        # numpy writes (3, byteorder, None, None, None, -1, -1, flags) for simple dtypes
        if self.built or type(state) is not tuple or len(state) != 8:
            raise ValueError("unexpected dtype state")
        ver, order, sub, names, fields, elsize, align, flags = state
        if ver != 3 or order not in ("<", ">", "|", "=") or (sub, names, fields) != (None,) * 3:
            raise ValueError("unsupported dtype state (structured or sub-array dtype)")
        if type(elsize) is not int or type(align) is not int or type(flags) is not int:
            raise ValueError("unexpected dtype state")
        if order in "<>":
            self.dtype = self.dtype.newbyteorder(order)
        self.built = True


class _Array:
    """Result of _reconstruct(ndarray, (0,), b'b'): filled by BUILD from validated state."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray | None = None):
        self.array = array

    def __setstate__(self, state):
        if self.array is not None or type(state) is not tuple:
            raise ValueError("unexpected array state")
        if len(state) == 5:
            state = state[1:]  # drop the pickle version
        if len(state) != 4:
            raise ValueError("unexpected array state")
        shape, dt, fortran, raw = state
        if isinstance(raw, str):  # Python 2 pickles loaded with encoding='latin1'
            raw = raw.encode("latin1")
        self.array = _make_array(raw, dt, shape, "F" if fortran else "C")


def _make_array(raw, dt, shape, order) -> np.ndarray:
    if not isinstance(dt, _DType):
        raise ValueError("array dtype is not a plain numpy dtype")
    if type(raw) not in (bytes, bytearray):
        raise ValueError("array data is not bytes (object arrays are refused)")
    if type(shape) is not tuple or not all(type(d) is int and d >= 0 for d in shape):
        raise ValueError("array shape is not a tuple of non-negative ints")
    if order not in ("C", "F"):
        raise ValueError("array order is not C or F")
    n = 1
    for d in shape:
        n *= d
    if n * dt.dtype.itemsize != len(raw):  # Python ints: no overflow, no allocation
        raise ValueError(f"array of shape {shape} needs {n * dt.dtype.itemsize} bytes, has {len(raw)}")
    budget = _ARRAY_BUDGET.get(None)
    if budget is not None:
        budget[0] -= len(raw)
        if budget[0] < 0:
            raise ValueError("its arrays hold more bytes than the file: they share data, which Paddle's never do")
    a = np.frombuffer(raw, dtype=dt.dtype).reshape(shape, order=order)
    # own, aligned, C-ordered, native-endian copy
    return np.array(a, dtype=dt.dtype.newbyteorder("="), order="C", copy=True)


def _dtype(where, code, align=False, copy=True):
    if type(code) is not str or code not in _DTYPE_CODES:
        raise UnsafePickleError(
            f"{where}: the pickle asks for numpy dtype {code!r:.40}, only plain numeric dtypes are allowed"
        )
    return _DType(np.dtype(code))


def _reconstruct(where, cls, shape, typecode):
    if not (isinstance(cls, _Guard) and cls.qualname == "numpy.ndarray"):
        raise UnsafePickleError(f"{where}: the pickle reconstructs something other than numpy.ndarray")
    if shape != (0,) or typecode not in (b"b", "b"):
        raise ValueError("unexpected _reconstruct arguments")
    return _Array()


def _frombuffer(where, buf, dt, shape, order):  # numpy's protocol-5 path
    return _Array(_make_array(bytes(buf) if type(buf) is bytearray else buf, dt, shape, order))


def _scalar(where, dt, raw):  # numpy scalars: scalar(dtype, item bytes)
    a = _make_array(raw.encode("latin1") if isinstance(raw, str) else raw, dt, (), "C")
    return a[()]


def _encode(where, text, encoding="utf-8"):  # protocol <3 writes bytes as encode(str, 'latin1')
    if type(text) is not str or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"{where}: the pickle calls _codecs.encode other than for latin1 bytes")
    return text.encode("latin1")


def _bytes(where, *args):  # protocol <3 writes b'' as bytes()
    if args and not (len(args) == 1 and type(args[0]) in (bytes, bytearray)):
        raise UnsafePickleError(f"{where}: the pickle calls builtins.bytes with arguments")
    return bytes(*args)


def _tuple(where, *args):  # paddle.save pickles a Tensor outside a state dict as tuple((name, ndarray))
    if len(args) != 1 or type(args[0]) not in (tuple, list):
        raise UnsafePickleError(f"{where}: the pickle asks for builtins.tuple of something other than a plain tuple or list")
    return tuple(args[0])


def _eval(where, *args):
    """paddle.save pickles a DenseTensor as eval('data', {'data': ndarray}): that exact form gives
    the value back without evaluating anything; any other call is refused."""
    if (len(args) == 2 and type(args[0]) is str and args[0] == "data" and type(args[1]) is dict
            and len(args[1]) == 1 and "data" in args[1]):
        return args[1]["data"]
    raise UnsafePickleError(f"{where}: the pickle asks for builtins.eval other than as paddle.save writes a "
                            "DenseTensor (eval('data', {'data': array})); refusing to load it")


def _ordered_dict(where, *args):  # plain dicts keep order; a pickled OrderedDict has no args
    if args:
        raise UnsafePickleError(f"{where}: the pickle calls collections.OrderedDict with arguments")
    return {}


_ALLOWED: dict[tuple[str, str], tuple[str, Callable | None]] = {
    ("numpy", "ndarray"): ("numpy.ndarray", None),
    ("numpy", "dtype"): ("numpy.dtype", _dtype),
    ("numpy.core.multiarray", "_reconstruct"): ("numpy.core.multiarray._reconstruct", _reconstruct),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray._reconstruct", _reconstruct),
    ("numpy.core.multiarray", "scalar"): ("numpy.core.multiarray.scalar", _scalar),
    ("numpy._core.multiarray", "scalar"): ("numpy._core.multiarray.scalar", _scalar),
    ("numpy.core.numeric", "_frombuffer"): ("numpy.core.numeric._frombuffer", _frombuffer),
    ("numpy._core.numeric", "_frombuffer"): ("numpy._core.numeric._frombuffer", _frombuffer),
    ("_codecs", "encode"): ("_codecs.encode", _encode),
    ("builtins", "bytes"): ("builtins.bytes", _bytes),
    ("__builtin__", "bytes"): ("builtins.bytes", _bytes),
    ("collections", "OrderedDict"): ("collections.OrderedDict", _ordered_dict),
    ("builtins", "tuple"): ("builtins.tuple", _tuple),
    ("__builtin__", "tuple"): ("builtins.tuple", _tuple),
    ("builtins", "eval"): ("builtins.eval", _eval),
    ("__builtin__", "eval"): ("builtins.eval", _eval),
}


class SafeUnpickler(pickle.Unpickler):
    """pickle.Unpickler that resolves only the globals in ``_ALLOWED`` (as guards)."""

    def __init__(self, file, where: str):
        super().__init__(file, encoding="latin1")
        self.where = where

    def find_class(self, module, name):
        entry = _ALLOWED.get((module, name))
        if entry is None:
            raise UnsafePickleError(
                f"{self.where}: the pickle asks for {module}.{name}, which is neither plain "
                "data nor a numpy array; refusing to load it"
            )
        return _Guard(entry[0], entry[1], self.where)

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.where}: the pickle uses persistent ids, which plain data never needs")


def loads(data: bytes | bytearray, where: str | Path = "<bytes>") -> object:
    """Unpickle ``data`` allowing only plain data and numeric numpy arrays.

    Raises UnsafePickleError for any other global, FormatError for anything malformed.
    """
    where = str(where)
    if not data:
        raise FormatError(f"{where}: empty file, expected a pickle")
    with warnings.catch_warnings():  # protocol-0 strings may warn about invalid escapes
        warnings.simplefilter("ignore")
        return _loads(data, where)


def _loads(data: bytes | bytearray, where: str) -> object:
    try:
        # Lexical pre-pass: pickletools reads counted data without trusting the counts,
        # whereas the C unpickler allocates a claimed BINBYTES8 size before reading it.
        for _ in pickletools.genops(data):
            pass
    except Exception as e:
        raise FormatError(f"{where}: not a valid pickle ({type(e).__name__}: {_short(e)})") from None
    budget = _ARRAY_BUDGET.set([len(data)])
    try:
        stream = io.BytesIO(data)
        obj = SafeUnpickler(stream, where).load()
        if stream.tell() != len(data):  # paddle.save writes one pickle: more is damage or another file
            raise FormatError(f"{where}: {len(data) - stream.tell()} bytes after the end of the pickle "
                              f"(at byte {stream.tell()}); the file is damaged or two files were joined")
        return _resolve(obj, where, 0, {})
    except FormatError:
        raise
    except Exception as e:  # anything a malformed pickle can trigger, incl. MemoryError/RecursionError
        raise FormatError(
            f"{where}: not a valid pickle of plain data and arrays ({type(e).__name__}: {_short(e)})"
        ) from None
    finally:
        _ARRAY_BUDGET.reset(budget)


def load(path: str | Path) -> object:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FormatError(f"{path}: cannot read: {e.strerror or e}") from None
    return loads(data, path)


def _short(e: BaseException) -> str:
    s = str(e)
    return s if len(s) <= 200 else s[:200] + "..."


_PLAIN = (str, bytes, int, float, bool, type(None), complex)


def _resolve(obj, where: str, depth: int, done: dict):
    """Replace array proxies by their arrays; refuse guards, half-built proxies, odd types."""
    t = type(obj)
    if t in _PLAIN or isinstance(obj, np.generic):  # numpy scalars only come from _scalar
        return obj
    if t is _Array:
        if obj.array is None:
            raise FormatError(f"{where}: a numpy array in the pickle has no data")
        return obj.array
    if depth > _MAX_DEPTH:
        raise FormatError(f"{where}: the pickle nests containers more than {_MAX_DEPTH} deep")
    key = id(obj)
    if key in done:  # shared or recursive container: resolved once
        return done[key]
    if t is dict:
        done[key] = obj
        for k in list(obj):
            if type(k) not in _PLAIN and type(k) is not tuple:
                raise FormatError(f"{where}: the pickle has a dict key of type {type(k).__name__}")
            obj[k] = _resolve(obj[k], where, depth + 1, done)
        return obj
    if t is list:
        done[key] = obj
        obj[:] = [_resolve(x, where, depth + 1, done) for x in obj]
        return obj
    if t is tuple:
        done[key] = obj  # a cycle through a tuple keeps the original tuple
        out = tuple(_resolve(x, where, depth + 1, done) for x in obj)
        done[key] = out
        return out
    if t is bytearray:
        return obj
    if t in (set, frozenset):
        if all(type(x) in _PLAIN for x in obj):
            return obj
        raise FormatError(f"{where}: the pickle has a set of non-plain objects")
    if t is _Guard:
        raise FormatError(f"{where}: the pickle holds {obj.qualname} itself, not data")
    raise FormatError(f"{where}: the pickle holds an unexpected {t.__name__} object")
