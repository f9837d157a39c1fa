"""A Triton Inference Server model repository for an exported model (serving past one machine).

Triton's sequence batcher with *implicit state* does for many cameras what our sessions do for
one: each camera is a sequence (one correlation id), and Triton keeps every sequence's
``state_out.i`` and feeds it back as ``state_in.i`` of its next request, starting from zeros.
So the state tensors never travel over the network; clients send only ``frame`` and read
``logits``. One ``state`` entry per shift point, dims from the card (without the batch
dimension when Triton batches). With a dynamic-batch export (``streamtsm export
--dynamic-batch``) the ``oldest`` strategy batches up to ``max_candidate_sequences`` cameras
per execution; a fixed-batch export is served one sequence at a time (``max_batch_size: 0``).

torch-free. We generate the repository; we do not run a server here.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..card import ModelCard
from ..contract import graph_signature

log = logging.getLogger(__name__)


class TritonError(ValueError):
    """The model cannot be described as a Triton model as asked."""


@dataclass(frozen=True)
class TritonOptions:
    """Serving choices: ``max_batch_size`` cameras per execution (dynamic-batch exports only),
    candidate sequences, idle timeout, instance kind, and the platform (onnxruntime or tensorrt)."""

    max_batch_size: int = 8
    max_candidate_sequences: int = 64
    max_queue_delay_us: int = 2000
    max_sequence_idle_us: int = 5_000_000
    instance_kind: str = "KIND_GPU"
    instance_count: int = 1
    platform: str = "onnxruntime_onnx"
    tensorrt_accelerator: bool = False

    def __post_init__(self) -> None:
        if self.platform not in ("onnxruntime_onnx", "tensorrt_plan"):
            raise TritonError(f"platform must be onnxruntime_onnx or tensorrt_plan, got {self.platform!r}")
        if self.instance_kind not in ("KIND_GPU", "KIND_CPU"):
            raise TritonError(f"instance_kind must be KIND_GPU or KIND_CPU, got {self.instance_kind!r}")
        if self.max_batch_size < 1 or self.max_candidate_sequences < 1:
            raise TritonError("max_batch_size and max_candidate_sequences must be >= 1")


def _dims(shape: tuple[int, ...]) -> str:
    return "[ " + ", ".join(str(int(d)) for d in shape) + " ]"


def triton_config(name: str, card: ModelCard, *, dynamic_batch: bool, fixed_batch: int = 1,
                  options: TritonOptions = TritonOptions()) -> str:
    """The ``config.pbtxt`` text for a model exported with ``card``."""
    if not card.is_online:
        raise TritonError(
            f"{card.arch} is a window model: it has no state and needs no sequence batcher; serve it as a "
            "plain Triton model (its clip input is named 'clip')"
        )
    if not dynamic_batch and fixed_batch != 1:
        raise TritonError(f"a fixed batch of {fixed_batch} streams cannot be split into Triton sequences; export with --dynamic-batch")
    sig = graph_signature(card, 1)
    strip = (lambda s: s[1:]) if dynamic_batch else (lambda s: s)  # Triton adds the batch dim itself
    lines = [
        f'name: "{name}"',
        f'platform: "{options.platform}"',
        f"max_batch_size: {options.max_batch_size if dynamic_batch else 0}",
        "input [",
        "  {",
        f'    name: "{sig.inputs[0].name}"',
        "    data_type: TYPE_FP32",
        f"    dims: {_dims(strip(sig.inputs[0].shape))}",
        "  }",
        "]",
        "output [",
        "  {",
        f'    name: "{sig.outputs[0].name}"',
        "    data_type: TYPE_FP32",
        f"    dims: {_dims(strip(sig.outputs[0].shape))}",
        '    label_filename: "labels.txt"',
        "  }",
        "]",
        "sequence_batching {",
        f"  max_sequence_idle_microseconds: {options.max_sequence_idle_us}",
    ]
    if dynamic_batch:
        lines += [
            "  oldest {",
            f"    max_candidate_sequences: {options.max_candidate_sequences}",
            f"    preferred_batch_size: [ {options.max_batch_size} ]",
            f"    max_queue_delay_microseconds: {options.max_queue_delay_us}",
            "  }",
        ]
    else:
        lines += ["  direct { }"]
    lines.append("  state [")
    for k, ((in_name, out_name), spec) in enumerate(zip(sig.state_pairs, sig.inputs[1:])):
        dims = _dims(strip(spec.shape))
        lines += [
            "    {",
            f'      input_name: "{in_name}"',
            f'      output_name: "{out_name}"',
            "      data_type: TYPE_FP32",
            f"      dims: {dims}",
            "      initial_state: {",
            "        data_type: TYPE_FP32",
            f"        dims: {dims}",
            "        zero_data: true",
            f'        name: "zeros_{k}"',
            "      }",
            "    }" + ("," if k < len(sig.state_pairs) - 1 else ""),
        ]
    lines += ["  ]", "}", "instance_group [", "  {", f"    count: {options.instance_count}", f"    kind: {options.instance_kind}", "  }", "]"]
    if options.tensorrt_accelerator and options.platform == "onnxruntime_onnx":
        lines += [
            "optimization {",
            "  execution_accelerators {",
            "    gpu_execution_accelerator: [",
            "      {",
            '        name: "tensorrt"',
            '        parameters { key: "precision_mode" value: "FP16" }',
            "      }",
            "    ]",
            "  }",
            "}",
        ]
    return "\n".join(lines) + "\n"


def write_triton_repository(
    model_path: str | Path, repository: str | Path, *, name: str | None = None, version: int = 1,
    options: TritonOptions = TritonOptions(),
) -> Path:
    """Create ``repository/NAME/{config.pbtxt, labels.txt, VERSION/model.onnx|model.plan}``; returns the model dir.

    ``model_path`` is an exported ``.onnx`` (card read from its metadata) or a ``.plan`` with
    its sidecar (then the platform is ``tensorrt_plan``).
    """
    from ..backends.onnxruntime_backend import open_onnxruntime

    model_path = Path(model_path)
    if model_path.suffix == ".onnx":
        backend = open_onnxruntime(model_path, ["CPUExecutionProvider"])
        card, dynamic, fixed = backend.card, backend.dynamic_batch, backend.fixed_batch or 1
        backend.close()
        file_name = "model.onnx"
    elif model_path.suffix == ".plan":
        from .tensorrt import read_sidecar

        side = read_sidecar(model_path)
        card, dynamic, fixed = side.model_card, side.max_batch > 1, 1
        options = TritonOptions(**{**options.__dict__, "platform": "tensorrt_plan", "max_batch_size": min(options.max_batch_size, side.max_batch)})
        file_name = "model.plan"
    else:
        raise TritonError(f"{model_path}: expected an exported .onnx or a TensorRT .plan")
    name = name or model_path.name.split(".")[0]
    if not dynamic:
        log.warning("%s has a fixed batch: Triton will run one camera per execution; export with --dynamic-batch to batch cameras", model_path)
    config = triton_config(name, card, dynamic_batch=dynamic, fixed_batch=fixed, options=options)
    model_dir = Path(repository) / name
    (model_dir / str(version)).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_path, model_dir / str(version) / file_name)
    (model_dir / "config.pbtxt").write_text(config, encoding="utf-8")
    (model_dir / "labels.txt").write_text("\n".join(card.class_names) + "\n", encoding="utf-8")
    return model_dir
