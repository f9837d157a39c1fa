"""What an exported file is, without running it: ``streamtsm info`` for ``.onnx`` and ``.plan``.

An ``.onnx`` file is described from its own bytes: the card in its metadata (checked by the
one card validator), its inputs and outputs (checked against the card's contract, so a file
that would be refused at run time is refused here with the same message), opset, and whether
the batch dimension is dynamic. A ``.plan`` (TensorRT engine) is described from its JSON
sidecar, which says what it was built from (TensorRT version, GPU, precision, the ONNX file's
SHA-256 and card): reading the engine itself would need TensorRT and a GPU, the sidecar
needs neither. torch-free; the ``onnx`` package is used when installed (it gives the opset),
otherwise ONNX Runtime reads the graph.

A checkpoint is not described here (that needs torch), but whether a file *can* be one is
told from its first bytes (:func:`check_checkpoint_file`), without torch: a JPEG or a text
file given as a model is "not a model checkpoint", not a pickle the restricted reader refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .backends.tensorrt_engine import file_sha256, read_sidecar
from .card import ModelCard
from .contract import check_graph_io, graph_signature, read_card_from_onnx_metadata


class CheckpointError(ValueError):
    """A checkpoint file cannot be used: unreadable, unknown format, or not matching a model.

    Defined here, torch-free, so that a device without torch can refuse a file that is not a
    checkpoint with the same class; :mod:`streamtsm.checkpoints` raises it for everything else.
    """


#: What the file's first bytes say when it is not a checkpoint: (prefix, what it is).
_NOT_CHECKPOINTS = (
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"%PDF", "a PDF document"),
    (b"\x7fELF", "a program (ELF)"),
    (b"\x1f\x8b", "a gzip archive: unpack it first"),
    (b"BZh", "a bzip2 archive: unpack it first"),
    (b"\xfd7zXZ\x00", "an xz archive: unpack it first"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive: unpack it first"),
    (b"\x1aE\xdf\xa3", "a Matroska/WebM video: give it as a source, not as a model"),
    (b"RIFF", "a RIFF file (AVI video or WAV sound)"),
    (b"version https://git-lfs", "a Git LFS pointer, not the file itself: run `git lfs pull`"),
)

_HEAD_BYTES = 512


def checkpoint_container(head: bytes) -> str | None:
    """The container a checkpoint file starting with ``head`` is in, None if it cannot be one.

    ``"zip"``: torch.save since 1.6 (``PK\\x03\\x04``); ``"pickle"``: a pickle with a protocol
    2-5 header (``\\x80\\x02`` to ``\\x80\\x05``), as torch's legacy format (a protocol-2 pickle
    of its magic number, then the tensors) and plain pickled state dicts are; ``"tar"``: torch's
    oldest format; ``"safetensors"``: an 8-byte little-endian header length, then its JSON.
    """
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if head[257:262] == b"ustar":
        return "tar"
    if len(head) >= 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= 100_000_000:
        return "safetensors"
    return None


def _what_it_is(head: bytes) -> str:
    if not head:
        return "the file is empty"
    for prefix, what in _NOT_CHECKPOINTS:
        if head.startswith(prefix):
            return "it is " + what
    if head[4:8] == b"ftyp":
        return "it is an MP4/MOV video: give it as a source, not as a model"
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        return "it is an HTML page: a download that fetched an error or login page?"
    text = next((t for t in map(_utf8, (head, head[:-1], head[:-2], head[:-3])) if t is not None), None)  # a character cut at the end
    if text is not None and all(c.isprintable() or c in "\t\r\n" for c in text):
        return "it is a text file"
    return "it starts with the bytes " + head[:8].hex(" ")


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def check_checkpoint_file(path: str | Path) -> str:
    """The container of an existing checkpoint file (see :func:`checkpoint_container`); refuses,
    with :class:`CheckpointError` saying what the file is instead, a file that cannot be one
    (an image, a text file, an HTML page) or cannot be read. torch-free."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError as exc:
        raise CheckpointError(f"{p} cannot be read ({exc.strerror or type(exc).__name__}): check that it is a file "
                              "you may read, or give another model") from None
    container = checkpoint_container(head)
    if container is None:
        raise CheckpointError(
            f"{p} is not a model checkpoint ({_what_it_is(head)}): give a checkpoint (.safetensors with its "
            ".card.json, .pth, .pth.tar, .pt, .ckpt), an exported .onnx or .plan, 'default' or a weight name (`streamtsm models`)"
        )
    return container


def card_fields(card: ModelCard) -> dict[str, Any]:
    """The facts of a card a person asks first (the summary lines of ``streamtsm info``)."""
    return {
        "arch": card.arch,
        "num_classes": card.num_classes,
        "classes": list(card.class_names) if card.num_classes <= 30 else list(card.class_names[:10]) + ["…"],
        "shift_mode": card.shift_mode,
        "mode": card.temporal.mode,
        "input_size": [card.preprocessing.crop_size, card.preprocessing.crop_size],
        "fps": card.temporal.fps,
        "precision": card.precision,
        "state_tensors": len(card.state),
    }


def _existing_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p} does not exist" if not p.exists() else f"{p} is not a file")
    return p


def describe_onnx(path: str | Path) -> dict[str, Any]:
    """Card, I/O, opset and batch of an exported ``.onnx`` file; ContractError if it breaks the contract."""
    p = _existing_file(path)
    metadata, inputs, outputs, opset = _read_onnx(p)
    card = read_card_from_onnx_metadata(metadata, str(p))
    main = inputs.get(card.input_name, ([1], ""))[0]
    batch = main[0] if main and isinstance(main[0], int) and main[0] > 0 else 1
    as_ints = lambda io: {n: (tuple(d if isinstance(d, int) and d > 0 else -1 for d in s), t) for n, (s, t) in io.items()}  # noqa: E731
    dynamic = check_graph_io(graph_signature(card, batch), as_ints(inputs), as_ints(outputs), str(p))
    return {
        "path": str(p),
        "format": "onnx",
        "file_size_bytes": p.stat().st_size,
        **card_fields(card),
        "opset": opset,
        "batch": "dynamic" if dynamic else batch,
        "calibration": card.calibration,
        "inputs": [{"name": n, "shape": list(s), "dtype": t} for n, (s, t) in inputs.items()],
        "outputs": [{"name": n, "shape": list(s), "dtype": t} for n, (s, t) in outputs.items()],
        "card": card.to_dict(),
    }


def describe_plan(path: str | Path) -> dict[str, Any]:
    """A TensorRT ``.plan`` from its sidecar (no TensorRT or GPU needed); EngineError without one."""
    p = _existing_file(path)
    side = read_sidecar(p)
    card = side.model_card
    onnx = Path(side.onnx_path) if side.onnx_path else None
    onnx_matches = file_sha256(onnx) == side.onnx_sha256 if onnx is not None and onnx.is_file() else None
    signature = graph_signature(card, 1)
    batch_note = f"1 to {side.max_batch}" if side.max_batch > 1 else 1
    return {
        "path": str(p),
        "format": "tensorrt",
        "file_size_bytes": p.stat().st_size,
        **card_fields(card),
        "engine_precision": side.precision,
        "tensorrt_version": side.tensorrt_version,
        "gpu": side.gpu,
        "max_batch": side.max_batch,
        "batch": batch_note,
        "onnx_sha256": side.onnx_sha256,
        "onnx_path": side.onnx_path,
        "onnx_matches": onnx_matches,
        "calibration": card.calibration,
        "inputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in signature.inputs],
        "outputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in signature.outputs],
        "io_from": "the card in the sidecar (reading the engine itself needs TensorRT and a GPU)",
        "card": card.to_dict(),
    }


_Io = dict[str, tuple[list[Any], str]]


def _read_onnx(path: Path) -> tuple[dict[str, str], _Io, _Io, int | None]:
    """(metadata, inputs, outputs, opset) with shapes as lists: ints, or names of symbolic dims."""
    try:
        import onnx
    except ModuleNotFoundError:
        return _read_with_onnxruntime(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends: not an ONNX file
        raise ValueError(f"{path}: not a readable ONNX file ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    initializers = {t.name for t in model.graph.initializer}

    def io(values) -> _Io:
        out: _Io = {}
        for v in values:
            if v.name in initializers:
                continue
            t = v.type.tensor_type
            shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
            out[v.name] = (shape, _onnx_dtype(onnx, t.elem_type))
        return out

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    metadata = {m.key: m.value for m in model.metadata_props}
    return metadata, io(model.graph.input), io(model.graph.output), opset


def _onnx_dtype(onnx: Any, elem_type: int) -> str:
    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError, TypeError):  # no numpy equivalent (e.g. bfloat16): ONNX's own name
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _read_with_onnxruntime(path: Path) -> tuple[dict[str, str], _Io, _Io, int | None]:
    from .backends.onnxruntime_backend import _ORT_DTYPES, _import_ort

    ort = _import_ort()
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ValueError(f"{path}: ONNX Runtime cannot load it: {str(exc).splitlines()[0][:300]}") from None
    dtype = lambda t: _ORT_DTYPES.get(t, t)  # noqa: E731
    shape = lambda s: [d if isinstance(d, int) else (d or "?") for d in s]  # noqa: E731
    inputs = {i.name: (shape(i.shape), dtype(i.type)) for i in session.get_inputs()}
    outputs = {o.name: (shape(o.shape), dtype(o.type)) for o in session.get_outputs()}
    return dict(session.get_modelmeta().custom_metadata_map), inputs, outputs, None
