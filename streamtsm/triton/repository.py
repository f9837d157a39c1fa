"""A Triton Inference Server model repository for an exported model (serving past one machine).

Each camera is one sequence (one correlation id) of Triton's sequence batcher. Two ways to
keep the shift state between a camera's frames, by backend:

* ``onnxruntime`` / ``tensorrt`` (GPU servers): *implicit state*. Triton keeps every
  sequence's ``state_out.i`` and feeds it back as ``state_in.i`` of its next request, starting
  from zeros: one ``state`` entry per shift point, dims from the card. Clients send only
  ``frame`` and read ``logits``.
* ``python`` (CPU servers): ``model.py`` (``streamtsm/triton/templates/model.py``) runs the
  ONNX graph with ONNX Runtime and keeps the state by correlation id itself, told by the
  control inputs ``START``/``END``/``CORRID``. The python backend needs ``max_batch_size`` >= 1
  (with 0, Triton rejected every request after a sequence's first one for a missing START).

With a dynamic-batch export (``streamtsm export --dynamic-batch``) the ``oldest`` strategy
batches up to ``max_batch_size`` cameras per execution; a fixed-batch export is served one
sequence at a time. The config also carries the model card (parameter ``streamtsm.card``),
so a client can preprocess frames without the model file.

Everything is validated before anything is written, and each file is replaced atomically.
torch-free.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..backends.onnxruntime_backend import open_onnxruntime
from ..backends.tensorrt_engine import read_sidecar
from ..card import ModelCard
from ..contract import card_metadata, graph_signature
from ..outputs import PendingFile, write_bytes_atomic

log = logging.getLogger(__name__)

BACKENDS = ("onnxruntime", "tensorrt", "python")
PLATFORMS = {"onnxruntime": "onnxruntime_onnx", "tensorrt": "tensorrt_plan"}
MODEL_FILES = {"onnxruntime": "model.onnx", "tensorrt": "model.plan", "python": "model.onnx"}
#: The python backend model, copied into each python repository as ``VERSION/model.py``.
PYTHON_MODEL_TEMPLATE = Path(__file__).parent / "templates" / "model.py"

#: Triton model names become directory names and URL path segments: keep them to this.
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
#: Limits for the numeric options (name, lowest, highest, unit shown in errors).
_RANGES = {
    "max_batch_size": (1, 1024),
    "max_candidate_sequences": (1, 65536),
    "max_queue_delay_us": (0, 10_000_000),
    "max_sequence_idle_us": (1_000, 86_400_000_000),
    "instance_count": (1, 64),
    "threads": (1, 256),
}


class TritonError(ValueError):
    """The model cannot be described as a Triton model as asked (the message says what to change)."""


class TritonRangeError(TritonError):
    """A numeric option is out of range; ``field``, ``low``, ``high``, ``value`` say which and how."""

    def __init__(self, field: str, low: int, high: int, value: object) -> None:
        super().__init__(f"{field} must be an integer from {low} to {high}, got {value!r}")
        self.field, self.low, self.high, self.value = field, low, high, value


def check_model_name(name: str) -> str:
    """A Triton model name that is also a safe directory name inside the repository."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise TritonError(
            f"model name {name!r} is not allowed: use 1-128 letters, digits, '_', '-' or '.', not starting with "
            "'.' or '-' (it becomes a directory of the repository and part of the server's URLs)"
        )
    return name


def check_class_names(class_names: tuple[str, ...], what: str) -> None:
    """labels.txt has one name per line: a line break inside a name would shift every later label."""
    for i, name in enumerate(class_names):
        if not name or len(name.splitlines()) != 1 or name != name.splitlines()[0]:
            raise TritonError(
                f"{what}: class name {i} ({name!r}) is empty or contains a line break, so labels.txt would assign "
                "the wrong label to every later class; fix the class names in the model card and export again"
            )


@dataclass(frozen=True)
class TritonOptions:
    """Serving choices. ``backend``: onnxruntime, tensorrt or python. ``max_batch_size``:
    cameras per execution (dynamic-batch exports; the python backend always batches
    requests); ``max_candidate_sequences``: cameras served at once; ``max_sequence_idle_us``:
    a camera silent this long loses its state; ``instance_kind`` KIND_GPU or KIND_CPU (python:
    CPU); ``tensorrt_accelerator``: ONNX Runtime with TensorRT (fp16; GPU instances only);
    ``threads``: ONNX Runtime intra-op threads per instance (python: ``intra_op_num_threads``,
    default 1; onnxruntime: Triton's ``intra_op_thread_count`` parameter, default ONNX Runtime's
    own, one per core; the tensorrt backend has no such setting)."""

    backend: str = "onnxruntime"
    max_batch_size: int = 8
    max_candidate_sequences: int = 64
    max_queue_delay_us: int = 2000
    max_sequence_idle_us: int = 5_000_000
    instance_kind: str = "KIND_GPU"
    instance_count: int = 1
    tensorrt_accelerator: bool = False
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise TritonError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.instance_kind not in ("KIND_GPU", "KIND_CPU"):
            raise TritonError(f"instance_kind must be KIND_GPU or KIND_CPU, got {self.instance_kind!r}")
        for field, (low, high) in _RANGES.items():
            value = getattr(self, field)
            if field == "threads" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise TritonRangeError(field, low, high, value)
        if self.backend == "tensorrt" and self.instance_kind == "KIND_CPU":
            raise TritonError("a TensorRT plan runs on a GPU only: drop --cpu, or serve the .onnx with --backend onnxruntime/python")
        if self.tensorrt_accelerator and self.backend != "onnxruntime":
            raise TritonError("the TensorRT accelerator is an option of the onnxruntime backend only")
        if self.tensorrt_accelerator and self.instance_kind == "KIND_CPU":
            raise TritonError(
                "the TensorRT accelerator runs on a GPU, but --cpu puts the instances on the CPU: drop --cpu "
                "(GPU instances with TensorRT) or --trt-accelerator (plain ONNX Runtime on the CPU)"
            )
        if self.threads is not None and self.backend == "tensorrt":
            raise TritonError(
                f"--threads {self.threads} sets ONNX Runtime's threads (backends onnxruntime and python); a TensorRT "
                "plan has no thread setting: drop --threads, or serve the .onnx with --backend onnxruntime/python"
            )


# -- protobuf text format ----------------------------------------------------------------------


class _Enum(str):
    """An enum value: written without quotes."""


def _scalar(value: Any) -> str:
    if isinstance(value, _Enum):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        if any(ord(c) < 0x20 or ord(c) > 0x7E for c in value):
            raise TritonError(f"cannot write {value!r} into config.pbtxt: only printable ASCII is allowed in strings")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"no text format for {type(value).__name__}")


def to_pbtxt(message: dict[str, Any], indent: int = 0) -> str:
    """A message (dict of field -> scalar, list of scalars, message, or list of messages) as text format."""
    pad = "  " * indent
    lines = []
    for field, value in message.items():
        if isinstance(value, dict):
            lines += [f"{pad}{field} {{", to_pbtxt(value, indent + 1), f"{pad}}}"]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{pad}{field} [")
            for k, item in enumerate(value):
                comma = "," if k < len(value) - 1 else ""
                lines += [f"{pad}  {{", to_pbtxt(item, indent + 2), f"{pad}  }}{comma}"]
            lines.append(f"{pad}]")
        elif isinstance(value, list):
            lines.append(f"{pad}{field}: [ {', '.join(_scalar(v) for v in value)} ]")
        else:
            lines.append(f"{pad}{field}: {_scalar(value)}")
    return "\n".join(line for line in lines if line)


# -- the config ----------------------------------------------------------------------------------

_FP32 = _Enum("TYPE_FP32")


def _control(name: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "control": [{"kind": _Enum(kind), **fields}]}


def triton_config(name: str, card: ModelCard, *, dynamic_batch: bool, fixed_batch: int = 1,
                  options: TritonOptions = TritonOptions()) -> str:
    """The ``config.pbtxt`` text for a model exported with ``card``."""
    check_model_name(name)
    if not card.is_online:
        raise TritonError(
            f"{card.arch} is a window model: it has no state and needs no sequence batcher; serve it as a "
            "plain Triton model (its clip input is named 'clip')"
        )
    if not dynamic_batch and fixed_batch != 1:
        raise TritonError(f"a fixed batch of {fixed_batch} streams cannot be split into Triton sequences; export with --dynamic-batch")
    python = options.backend == "python"
    # Triton adds the batch dimension itself when it batches; the python backend always batches.
    batching = dynamic_batch or python
    max_batch = options.max_batch_size if dynamic_batch else (options.max_batch_size if python else 0)
    sig = graph_signature(card, 1)
    dims = (lambda shape: list(shape[1:])) if batching else (lambda shape: list(shape))
    config: dict[str, Any] = {"name": name}
    if python:
        config["backend"] = "python"
    else:
        config["platform"] = PLATFORMS[options.backend]
    config["max_batch_size"] = max_batch
    config["input"] = [{"name": sig.inputs[0].name, "data_type": _FP32, "dims": dims(sig.inputs[0].shape)}]
    config["output"] = [{"name": sig.outputs[0].name, "data_type": _FP32, "dims": dims(sig.outputs[0].shape),
                         "label_filename": "labels.txt"}]
    sequence: dict[str, Any] = {"max_sequence_idle_microseconds": options.max_sequence_idle_us}
    if python:
        sequence["control_input"] = [
            _control("START", "CONTROL_SEQUENCE_START", fp32_false_true=[0.0, 1.0]),
            _control("END", "CONTROL_SEQUENCE_END", fp32_false_true=[0.0, 1.0]),
            _control("CORRID", "CONTROL_SEQUENCE_CORRID", data_type=_Enum("TYPE_UINT64")),
        ]
    if max_batch > 1:
        sequence["oldest"] = {
            "max_candidate_sequences": options.max_candidate_sequences,
            "preferred_batch_size": [max_batch],
            "max_queue_delay_microseconds": options.max_queue_delay_us,
        }
    else:
        sequence["direct"] = {}
    if not python:
        sequence["state"] = [
            {
                "input_name": in_name,
                "output_name": out_name,
                "data_type": _FP32,
                "dims": dims(spec.shape),
                "initial_state": {"data_type": _FP32, "dims": dims(spec.shape), "zero_data": True, "name": f"zeros_{k}"},
            }
            for k, ((in_name, out_name), spec) in enumerate(zip(sig.state_pairs, sig.inputs[1:]))
        ]
    config["sequence_batching"] = sequence
    kind = "KIND_CPU" if python else options.instance_kind
    config["instance_group"] = [{"count": options.instance_count, "kind": _Enum(kind)}]
    parameters = dict(card_metadata(card))
    if python:  # read by model.py
        parameters["intra_op_num_threads"] = str(options.threads or 1)
    elif options.threads is not None:  # Triton's ONNX Runtime backend: SessionOptions.intra_op_num_threads
        parameters["intra_op_thread_count"] = str(options.threads)
    config["parameters"] = [{"key": k, "value": {"string_value": v}} for k, v in parameters.items()]
    if options.tensorrt_accelerator:
        config["optimization"] = {"execution_accelerators": {"gpu_execution_accelerator": [
            {"name": "tensorrt", "parameters": {"key": "precision_mode", "value": "FP16"}}]}}
    return to_pbtxt(config) + "\n"


# -- the repository ------------------------------------------------------------------------------


def _copy_atomically(source: Path, path: Path) -> None:
    with PendingFile(path) as pending:
        shutil.copyfile(source, pending.temp)


def check_output_dir(folder: Path, what: str, flag: str) -> None:
    """``folder`` is a directory or can become one: no file in the way, and writable."""
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                where = "is a file" if parent == folder else f"is inside {parent}, which is a file"
                raise TritonError(f"{what} {folder} {where}: give {flag} a directory (new or existing)")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise TritonError(f"cannot write into {parent}: give {flag} a directory you can write to")
            return


def _model_and_card(model_path: Path, options: TritonOptions) -> tuple[ModelCard, bool, int, TritonOptions]:
    """Card, dynamic batch, fixed batch and the options adjusted to the file (a .plan caps the batch)."""
    if not model_path.is_file():
        raise TritonError(
            f"{model_path} does not exist: give an exported .onnx or .plan file (`streamtsm export MODEL -o "
            "engines/NAME.onnx`), 'default', or an online weight name (`streamtsm models`)"
        )
    suffix = model_path.suffix.lower()  # G.ONNX is an ONNX file, as for every other command
    if suffix == ".onnx":
        if options.backend == "tensorrt":
            raise TritonError(
                f"{model_path} is an ONNX file: the tensorrt backend serves a .plan (build one with `streamtsm "
                f"build-engine {model_path}`), or use --backend onnxruntime (optionally --trt-accelerator)"
            )
        backend = open_onnxruntime(model_path, ["CPUExecutionProvider"])
        try:
            return backend.card, backend.dynamic_batch, backend.fixed_batch or 1, options
        finally:
            backend.close()
    if suffix == ".plan":
        if options.backend != "tensorrt":
            raise TritonError(f"{model_path} is a TensorRT plan: serve it with --backend tensorrt (the default for .plan)")
        side = read_sidecar(model_path)
        capped = replace(options, max_batch_size=min(options.max_batch_size, side.max_batch))
        return side.model_card, side.max_batch > 1, 1, capped
    raise TritonError(f"{model_path}: expected an exported .onnx or a TensorRT .plan (by its suffix, any case)")


def default_backend(model_path: str | Path) -> str:
    """tensorrt for a .plan, onnxruntime otherwise."""
    return "tensorrt" if Path(model_path).suffix.lower() == ".plan" else "onnxruntime"


def write_triton_repository(
    model_path: str | Path, repository: str | Path, *, name: str | None = None, version: int = 1,
    options: TritonOptions = TritonOptions(),
) -> Path:
    """Create ``repository/NAME/{config.pbtxt, labels.txt, VERSION/model.onnx|.plan[, model.py]}``; returns the model dir.

    ``model_path`` is an exported ``.onnx`` (card read from its metadata) or a ``.plan`` with
    its sidecar. Name, numbers, paths and class names are checked before anything is written;
    an existing model of the same name is replaced file by file, atomically.
    """
    model_path, repository = Path(model_path), Path(repository)
    name = check_model_name(name if name is not None else model_path.name.split(".")[0])
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= 1_000_000:
        raise TritonError(f"version must be an integer from 1 to 1000000, got {version!r}")
    check_output_dir(repository, "repository", "-o")
    model_dir = repository / name
    target = model_dir / str(version) / MODEL_FILES[options.backend]
    for folder in (model_dir, target.parent):
        if folder.exists() and not folder.is_dir():
            raise TritonError(f"{folder} is a file, where the model's directory would go: remove it or give another --name")
    if target.is_dir():
        raise TritonError(f"{target} is a directory, where the model file would go: remove it or give another --name")
    if target.exists() and model_path.exists() and os.path.samefile(target, model_path):
        raise TritonError(
            f"{model_path} is the model file this would write ({target}): give another -o or --name, or export "
            "the model to a file outside the repository first"
        )
    card, dynamic, fixed, options = _model_and_card(model_path, options)
    check_class_names(card.class_names, str(model_path))
    if not dynamic:
        runs = "the python model steps the cameras of an execution one by one" if options.backend == "python" else \
            "Triton will run one camera per execution"
        log.warning("%s has a fixed batch: %s; export with --dynamic-batch to batch cameras", model_path, runs)
    config = triton_config(name, card, dynamic_batch=dynamic, fixed_batch=fixed, options=options)
    try:
        (model_dir / str(version)).mkdir(parents=True, exist_ok=True)
        _copy_atomically(model_path, target)
        if options.backend == "python":
            _copy_atomically(PYTHON_MODEL_TEMPLATE, model_dir / str(version) / "model.py")
        write_bytes_atomic(model_dir / "labels.txt", ("\n".join(card.class_names) + "\n").encode("utf-8"))
        write_bytes_atomic(model_dir / "config.pbtxt", config.encode("ascii"))  # last: a polling server sees a whole model
    except OSError as exc:  # a folder the checks could not foresee (/proc, a full disk, a read-only mount)
        raise TritonError(_write_failure(repository, exc)) from None
    return model_dir


def _write_failure(repository: Path, exc: OSError) -> str:
    """One line: which folder could not be written, why, and what to do."""
    where = Path(exc.filename) if exc.filename else repository
    reason = exc.strerror or type(exc).__name__
    if exc.errno == errno.ENOENT and where.parent.is_dir():  # mkdir in /proc, /sys: the parent exists but takes no entries
        reason = f"{where.parent} exists but takes no new entries: it is not a folder for files"
    return f"cannot write the repository {repository}: writing {where} failed ({reason}); give -o a directory you can write to"
