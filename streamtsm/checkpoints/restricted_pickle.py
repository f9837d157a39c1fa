"""Tensors out of a torch zip checkpoint whose pickle also holds arbitrary Python objects, running none of it.

mmengine's training checkpoints (``epoch_N.pth``, ``best_*.pth``) pickle the runner's message
hub, optimizer and scheduler state and numpy values beside ``state_dict``;
``torch.load(weights_only=True)`` refuses them, and a full ``torch.load`` would execute whatever
the file names. This reader interprets the pickle itself, one opcode at a time (from
``pickletools.genops``, which only parses), and is used only after ``weights_only`` refused.

What it allows, and why nothing in the file can run:

* **Globals are looked up in a fixed table, never imported.** The table holds the tensor
  rebuild functions that ``weights_only`` allows (``torch._utils._rebuild_tensor``, ``_v2``,
  ``_v3``, ``_rebuild_parameter``, ``_rebuild_parameter_with_state``,
  ``torch._tensor._rebuild_from_type_v2``), the storage type names (as dtype tokens, not the
  classes), dtypes, ``torch.Size``, ``torch.device``, ``collections.OrderedDict``, ``set``,
  ``frozenset``, ``bytearray``, ``complex`` and ``_codecs.encode``, each wrapped so that it checks
  its arguments. Every other name becomes a ``Placeholder`` that records the name: its module
  is not imported and no attribute of it is looked up.
* **Only table entries are ever called.** REDUCE / NEWOBJ of a placeholder build an ``Inert``
  record of the name and arguments (no call, no ``__new__``, no ``__setstate__``); BUILD on one
  stores the state in the record; APPEND / SETITEM only reach lists, dicts, sets and records.
  Calling anything else is refused. Names that only an attack would call (``os.system``,
  ``builtins.eval``, ``io.open`` …) are refused loudly rather than recorded, so a hostile file
  is reported as one.
* **Tensors come from the archive's own storage records**, through persistent ids of the form
  ``("storage", type, key, location, numel)``: the record must exist, be stored uncompressed and
  have exactly the announced size; sizes, strides and offsets must fit inside it (torch would
  otherwise grow the storage to whatever the pickle claims). Tensors come back detached: no
  ``requires_grad``, no backward hooks, no Python attributes. The state of an ``OrderedDict``
  (a state dict's ``_metadata``) is dropped.
* Opcodes outside plain data, memo, globals, REDUCE/NEWOBJ/BUILD and BINPERSID (INST, OBJ, EXT*,
  out-of-band buffers, text persistent ids) are refused; only the zip format (torch >= 1.6) is
  read.
"""

from __future__ import annotations

import pickletools
import sys
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch


class UnpicklingRefused(ValueError):
    """The pickle asks for something this reader does not do (the message says what)."""


class NotAZipCheckpoint(UnpicklingRefused):
    """The file is not a torch zip archive (a legacy or non-torch pickle)."""


@dataclass(frozen=True)
class Placeholder:
    """A global the pickle named that is not in the table: a name, nothing more."""

    name: str


@dataclass(eq=False, repr=False)
class Inert:
    """What the pickle wanted built from a placeholder, kept as data and never run."""

    origin: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    state: Any = None
    items: list = field(default_factory=list)
    entries: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # never the contents: they are untrusted and may nest without end
        return f"Inert({self.origin})"


@dataclass(frozen=True)
class _StorageType:
    """A storage class named in a persistent id, reduced to the dtype it stands for."""

    name: str
    dtype: torch.dtype


@dataclass(frozen=True)
class _TensorType:
    """``torch.Tensor`` / ``Parameter`` as arguments of ``_rebuild_from_type_v2``, not as callables."""

    name: str


_MODULE_ALIASES = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # protocol-2 spellings of Python 3 names
_HOSTILE_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "sys", "io", "_io", "importlib", "runpy", "shutil", "socket", "ctypes",
    "pickle", "_pickle", "marshal", "code", "codeop", "pty", "webbrowser", "multiprocessing",
})  # fmt: skip
_HOSTILE_BUILTINS = frozenset({
    "eval", "exec", "compile", "open", "__import__", "getattr", "setattr", "delattr", "globals", "locals", "vars",
    "input", "breakpoint", "exit", "quit", "help",
})  # fmt: skip
_STORAGE_DTYPES = {
    "DoubleStorage": torch.float64, "FloatStorage": torch.float32, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
    "ComplexDoubleStorage": torch.complex128, "ComplexFloatStorage": torch.complex64,
}  # fmt: skip  (the legacy storage classes torch.save names, by the dtype they hold)


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(type(v) is int and v >= 0 for v in value):
        raise UnpicklingRefused(f"tensor {what} must be a sequence of non-negative ints (got a {type(value).__name__})")
    return tuple(value)


def _checked_storage(storage: Any) -> torch.storage.TypedStorage:
    if not isinstance(storage, torch.storage.TypedStorage):
        raise UnpicklingRefused(f"a tensor rebuild got {type(storage).__name__} instead of a storage from the archive")
    return storage


def _fits(storage: torch.storage.TypedStorage, offset: Any, size: Any, stride: Any, dtype: torch.dtype) -> None:
    """Refuse a view that reaches past its storage (torch would resize the storage to fit)."""
    size, stride = _ints(size, "sizes"), _ints(stride, "strides")
    if type(offset) is not int or offset < 0 or len(size) != len(stride):
        raise UnpicklingRefused(f"tensor view with a {type(offset).__name__} offset, {len(size)} sizes and {len(stride)} strides")
    if 0 in size:
        return
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if (last + 1) * dtype.itemsize > storage._untyped_storage.nbytes():
        raise UnpicklingRefused(f"tensor of size {size} reaches past its {storage._untyped_storage.nbytes()}-byte storage")


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any) -> torch.Tensor:
    storage = _checked_storage(storage)
    _fits(storage, offset, size, stride, storage.dtype)
    return torch._utils._rebuild_tensor(storage, offset, tuple(size), tuple(stride)).detach()


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:  # fmt: skip
    storage = _checked_storage(storage)
    _fits(storage, offset, size, stride, storage.dtype)
    return torch._utils._rebuild_tensor_v2(storage, offset, tuple(size), tuple(stride), False, OrderedDict()).detach()


def _rebuild_tensor_v3(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any, backward_hooks: Any,
                       dtype: Any, metadata: Any = None) -> torch.Tensor:  # fmt: skip
    storage = _checked_storage(storage)
    if not isinstance(dtype, torch.dtype):
        raise UnpicklingRefused(f"tensor dtype must be a torch dtype, got {type(dtype).__name__}")
    _fits(storage, offset, size, stride, dtype)
    return torch._utils._rebuild_tensor_v3(
        storage, offset, tuple(size), tuple(stride), False, OrderedDict(), dtype
    ).detach()


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None, state: Any = None) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise UnpicklingRefused(f"a Parameter must wrap a tensor, got {type(data).__name__}")
    return data


_TENSOR_REBUILDERS = frozenset({_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter})


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> torch.Tensor:
    if func not in _TENSOR_REBUILDERS or not isinstance(new_type, _TensorType) or not isinstance(args, tuple):
        raise UnpicklingRefused("_rebuild_from_type_v2 is only followed for plain tensors and parameters")
    return func(*args)  # the tensor subclass and its Python attributes (state) are dropped


def _ordered_dict(*args: Any) -> OrderedDict:
    if len(args) > 1 or (args and not isinstance(args[0], (list, tuple, dict))):
        raise UnpicklingRefused("OrderedDict() with arguments other than one list of pairs")
    return OrderedDict(*args)


def _size(values: Any = ()) -> torch.Size:
    return torch.Size(_ints(values, "torch.Size"))


def _device(*args: Any) -> torch.device:
    if not 1 <= len(args) <= 2 or not all(type(a) in (str, int) for a in args):
        raise UnpicklingRefused(f"torch.device() of {len(args)} arguments that are not str/int")
    return torch.device(*args)


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    if type(text) is not str or encoding not in ("latin1", "latin-1", "utf-8"):
        raise UnpicklingRefused("_codecs.encode is only followed for the bytes encoding of protocol 2")
    return text.encode(encoding)


def _of_items(kind: Callable[[Any], Any]) -> Callable[..., Any]:
    def build(items: Any = ()) -> Any:
        if not isinstance(items, (list, tuple, bytes, str)):
            raise UnpicklingRefused(f"{kind.__name__}() of a {type(items).__name__}")
        return kind(items)

    return build


def _complex(real: Any = 0.0, imag: Any = 0.0) -> complex:
    if not all(type(v) in (int, float) for v in (real, imag)):
        raise UnpicklingRefused("complex() of something other than numbers")
    return complex(real, imag)


def _table() -> dict[str, Any]:
    table: dict[str, Any] = {
        "torch._utils._rebuild_tensor": _rebuild_tensor,
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
        "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
        "torch._utils._rebuild_parameter": _rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
        "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
        "torch.Tensor": _TensorType("torch.Tensor"),
        "torch.nn.parameter.Parameter": _TensorType("torch.nn.parameter.Parameter"),
        "torch.storage.UntypedStorage": _StorageType("UntypedStorage", torch.uint8),
        "torch.UntypedStorage": _StorageType("UntypedStorage", torch.uint8),
        "torch.Size": _size,
        "torch.device": _device,
        "collections.OrderedDict": _ordered_dict,
        "_codecs.encode": _encode,
        "builtins.set": _of_items(set),
        "builtins.frozenset": _of_items(frozenset),
        "builtins.bytearray": _of_items(bytearray),
        "builtins.complex": _complex,
    }
    table.update({f"torch.{name}": _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()})
    table.update({str(v): v for v in vars(torch).values() if isinstance(v, torch.dtype)})  # "torch.float32": …
    return table


ALLOWED_GLOBALS: dict[str, Any] = _table()
_CALLABLE = frozenset(v for v in ALLOWED_GLOBALS.values() if callable(v) and not isinstance(v, torch.dtype))


def _is_hostile(module: str, name: str) -> bool:
    return module.split(".")[0] in _HOSTILE_MODULES or (module == "builtins" and name in _HOSTILE_BUILTINS)


@dataclass
class ReadResult:
    """The unpickled object graph plus the names that became placeholders."""

    obj: Any
    placeholders: set[str]


class _Reader:
    """A stack machine over ``pickletools.genops`` for the opcodes that build data."""

    _PUSH_ARG = frozenset({
        "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT", "STRING", "BINSTRING",
        "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES",
        "BINBYTES8",
    })  # fmt: skip
    _CONSTANTS: dict[str, Callable[[], Any]] = {
        "NONE": lambda: None, "NEWTRUE": lambda: True, "NEWFALSE": lambda: False, "EMPTY_LIST": list,
        "EMPTY_DICT": dict, "EMPTY_TUPLE": tuple, "EMPTY_SET": set,
    }  # fmt: skip

    def __init__(self, archive: zipfile.ZipFile, prefix: str, file_size: int) -> None:
        self.archive, self.prefix, self.file_size = archive, prefix, file_size
        self.stack: list[Any] = []
        self.marks: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.storages: dict[str, torch.storage.TypedStorage] = {}
        self.placeholders: set[str] = set()

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise UnpicklingRefused("malformed pickle: MARK expected")
        items, self.stack = self.stack, self.marks.pop()
        return items

    def run(self, data: bytes) -> Any:  # noqa: C901 (one branch per opcode family)
        st = self.stack
        for op, arg, _pos in pickletools.genops(data):
            name = op.name
            st = self.stack
            if name in self._PUSH_ARG:
                st.append(arg)
            elif name in self._CONSTANTS:
                st.append(self._CONSTANTS[name]())
            elif name == "BYTEARRAY8":
                st.append(bytearray(arg))
            elif name == "MARK":
                self.marks.append(st)
                self.stack = []
            elif name in ("LIST", "TUPLE", "FROZENSET"):
                st = self.pop_mark()
                self.stack.append({"LIST": list, "TUPLE": tuple, "FROZENSET": frozenset}[name](st))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                if len(st) < n:
                    raise UnpicklingRefused(f"malformed pickle: {name} on a stack of {len(st)}")
                items = tuple(st[-n:])
                del st[-n:]
                st.append(items)
            elif name == "DICT":
                items = self.pop_mark()
                self.stack.append(dict(zip(items[::2], items[1::2])))
            elif name == "APPEND":
                value = st.pop()
                self._extend(st[-1], [value], name)
            elif name == "APPENDS":
                items = self.pop_mark()
                self._extend(self.stack[-1], items, name)
            elif name == "SETITEM":
                value, key = st.pop(), st.pop()
                self._set_items(st[-1], [key, value])
            elif name == "SETITEMS":
                items = self.pop_mark()
                self._set_items(self.stack[-1], items)
            elif name == "ADDITEMS":
                items = self.pop_mark()
                self._extend(self.stack[-1], items, name)
            elif name == "POP":
                if st:
                    st.pop()
                else:
                    self.pop_mark()
            elif name == "POP_MARK":
                self.pop_mark()
            elif name == "DUP":
                st.append(st[-1])
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                self.memo[arg] = st[-1]
            elif name == "MEMOIZE":
                self.memo[len(self.memo)] = st[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                if arg not in self.memo:
                    raise UnpicklingRefused(f"malformed pickle: memo entry {arg} read before it was written")
                st.append(self.memo[arg])
            elif name == "GLOBAL":
                module, _, attr = arg.partition(" ")
                st.append(self._global(module, attr))
            elif name == "STACK_GLOBAL":
                attr, module = st.pop(), st.pop()
                if type(module) is not str or type(attr) is not str:
                    raise UnpicklingRefused("malformed pickle: STACK_GLOBAL needs two strings")
                st.append(self._global(module, attr))
            elif name == "REDUCE":
                args = st.pop()
                st.append(self._call(st.pop(), args, {}))
            elif name == "NEWOBJ":
                args = st.pop()
                st.append(self._new(st.pop(), args, {}))
            elif name == "NEWOBJ_EX":
                kwargs, args = st.pop(), st.pop()
                st.append(self._new(st.pop(), args, kwargs))
            elif name == "BUILD":
                state = st.pop()
                self._build(st[-1], state)
            elif name == "BINPERSID":
                st.append(self._storage(st.pop()))
            elif name in ("PROTO", "FRAME"):
                pass
            elif name == "STOP":
                if len(st) != 1 or self.marks:
                    raise UnpicklingRefused("malformed pickle: STOP with a stack that is not one object")
                return st.pop()
            else:
                raise UnpicklingRefused(f"pickle opcode {name} is not followed by the restricted reader")
        raise UnpicklingRefused("malformed pickle: no STOP")

    # -- the four places where the pickle asks for behaviour ---------------------------------
    def _global(self, module: str, attr: str) -> Any:
        module = _MODULE_ALIASES.get(module, module)
        full = f"{module}.{attr}"
        if full in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[full]
        self.placeholders.add(full)
        return Placeholder(full)

    def _call(self, func: Any, args: Any, kwargs: dict) -> Any:
        if not isinstance(args, tuple):
            raise UnpicklingRefused("malformed pickle: REDUCE arguments are not a tuple")
        if isinstance(func, Placeholder):
            module, _, attr = func.name.rpartition(".")
            if _is_hostile(module, attr):
                raise UnpicklingRefused(
                    f"it would call {func.name}, which no checkpoint needs (a file made to run code?); nothing from it was run"
                )
            return Inert(func.name, args, kwargs)
        if callable(func) and func in _CALLABLE:
            try:
                return func(*args)
            except UnpicklingRefused:
                raise
            except (TypeError, ValueError, RuntimeError) as exc:
                raise UnpicklingRefused(f"malformed tensor or container record: {exc}") from None
        raise UnpicklingRefused(f"the pickle calls a {type(func).__name__}, which the restricted reader never calls")

    def _new(self, cls: Any, args: Any, kwargs: Any) -> Any:
        if not isinstance(cls, Placeholder) or not isinstance(kwargs, dict):
            raise UnpicklingRefused(f"NEWOBJ of a {type(cls).__name__}: only unknown classes are recorded, known ones never built this way")
        return self._call(cls, args, kwargs)

    def _build(self, inst: Any, state: Any) -> None:
        if isinstance(inst, Inert):
            inst.state = state
        elif type(inst) is not OrderedDict:  # an OrderedDict's state is a state dict's _metadata: dropped
            raise UnpicklingRefused(f"BUILD on a {type(inst).__name__}: only unknown objects take a state")

    def _extend(self, target: Any, items: list, opcode: str) -> None:
        """APPEND(S) onto a list, ADDITEMS onto a set; an unknown object keeps them as its items."""
        if isinstance(target, Inert):
            target.items.extend(items)
        elif opcode == "ADDITEMS" and type(target) is set:
            target.update(items)
        elif opcode != "ADDITEMS" and type(target) is list:
            target.extend(items)
        else:
            raise UnpicklingRefused(f"{opcode} to a {type(target).__name__}")

    def _set_items(self, target: Any, items: list) -> None:
        if type(target) not in (dict, OrderedDict) and not isinstance(target, Inert):
            raise UnpicklingRefused(f"SETITEM on a {type(target).__name__}")
        entries = target.entries if isinstance(target, Inert) else target
        try:
            for key, value in zip(items[::2], items[1::2]):
                entries[key] = value
        except TypeError as exc:  # an unhashable key
            raise UnpicklingRefused(f"malformed pickle: {exc}") from None

    # -- storages ---------------------------------------------------------------------------
    def _storage(self, pid: Any) -> torch.storage.TypedStorage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnpicklingRefused(f"a persistent id ({type(pid).__name__}) that is not a storage record")
        _, kind, key, _location, numel = pid
        if not isinstance(kind, _StorageType) or type(key) is not str or type(numel) is not int or numel < 0:
            raise UnpicklingRefused("malformed storage record (type, key, location, numel)")
        if key in self.storages:
            return self.storages[key]
        record = f"{self.prefix}data/{key}"
        try:
            info = self.archive.getinfo(record)
        except KeyError:
            raise UnpicklingRefused(f"storage {key[:40]!r} is missing from the archive") from None
        nbytes = numel * kind.dtype.itemsize
        stored = info.compress_type == zipfile.ZIP_STORED and info.compress_size == info.file_size <= self.file_size
        if not stored or info.file_size != nbytes:
            raise UnpicklingRefused(f"storage {key[:40]!r} holds {info.file_size} bytes, its record announces {nbytes}")
        buffer = torch.empty(nbytes, dtype=torch.uint8)
        view = memoryview(buffer.numpy())
        with self.archive.open(info) as f:
            filled = 0
            while filled < nbytes:
                n = f.readinto(view[filled:])
                if not n:
                    raise UnpicklingRefused(f"storage {key[:40]!r} ends early")
                filled += n
        typed = torch.storage.TypedStorage(wrap_storage=buffer.untyped_storage(), dtype=kind.dtype, _internal=True)
        self.storages[key] = typed
        return typed


def read_checkpoint(path: Path) -> ReadResult:
    """Unpickle a torch zip checkpoint with the restricted reader; raise ``UnpicklingRefused`` otherwise."""
    if not zipfile.is_zipfile(path):
        raise NotAZipCheckpoint(f"{path} is not a torch zip archive")
    try:
        with zipfile.ZipFile(path) as archive:
            return _read_archive(archive, path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UnpicklingRefused(f"damaged zip archive ({type(exc).__name__}: {exc})") from None


def _read_archive(archive: zipfile.ZipFile, path: Path) -> ReadResult:
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise NotAZipCheckpoint(f"{path} is a zip file but not a torch checkpoint (no single <name>/data.pkl)")
    prefix = pickles[0][: -len("data.pkl")]
    if f"{prefix}byteorder" in archive.namelist():
        order = archive.read(f"{prefix}byteorder").decode("ascii", "replace").strip()
        if order != sys.byteorder:
            raise UnpicklingRefused(f"a {order}-endian checkpoint on a {sys.byteorder}-endian machine")
    reader = _Reader(archive, prefix, path.stat().st_size)
    try:
        obj = reader.run(archive.read(pickles[0]))
    except UnpicklingRefused:
        raise
    except (IndexError, KeyError, ValueError, TypeError) as exc:  # malformed: genops, stack underflow, unhashable key
        raise UnpicklingRefused(f"malformed pickle ({type(exc).__name__}: {exc})") from None
    return ReadResult(obj, reader.placeholders)
