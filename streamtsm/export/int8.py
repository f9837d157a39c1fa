"""INT8 online graphs: static QDQ quantization calibrated on *streamed* frames, checked against fp32.

An online TSM's activations at step t depend on the cached folds of step t-1, so calibration
must see them as they occur live: the fp32 graph is stepped over the calibration frames with its
state carried, and each step's ``(frame, state_in.*)`` feeds are what ONNX Runtime's calibrator
runs (``quantize_static``, ``QuantFormat.QDQ``, per-channel weights, MinMax ranges). Each
calibration stream starts from zero state, as a live stream does. The result has the same I/O
as the fp32 graph (fp32 ``frame``/``state``/``logits``; Q/DQ pairs inside), so every runtime
that runs an export runs it, and its card says ``precision="int8"`` and what it was calibrated on.

Measured choices (embedded default model, 80 px; calibration 300 frames = 3 training-split
scripts; agreement = top-1 of int8 vs fp32 over 1,000 streamed frames of another training-split
script, state carried on both sides; ONNX Runtime 1.32, AMD EPYC Zen 3 with AVX2 and *no*
AVX-512/VNNI):

* **reduce_range (7-bit weights) on the CPU target.** Without it the int8 graph agrees on only
  0.859 of frames (mean max-probability difference 0.158). The same graph run with Q/DQ as float
  ops (ORT graph optimisations off: exactly the quantized arithmetic) agrees on 0.981, so the loss
  is not the quantization but the non-VNNI U8S8 kernel (``vpmaddubsw`` saturates int16 pair sums,
  255 x 127 x 2 > 32767). 7-bit weights cannot saturate: 0.982 with the real kernels, mean
  difference 0.018. S8S8 is converted to U8S8 by ORT on x86 and behaves the same (0.853 / 0.982).
  A VNNI CPU does not need the reduction; the graph is portable, so it is always on.
* **Activations uint8 asymmetric on the CPU target** (0.982) rather than int8 symmetric (0.972,
  mean difference 0.026): ReLU6 outputs are non-negative, symmetric int8 wastes half the codes.
  TensorRT only takes symmetric int8 (zero point 0), so ``target="tensorrt"`` quantizes
  activations int8 symmetric, weights full range (its kernels do not saturate), bias float: 0.975
  over the 1,000 frames with Q/DQ as float ops (0.987 on the export's 300-frame check, where the
  CPU target gave 0.993). The figures here were measured before the runtime's faster area resize;
  the CPU target's check now gives 0.990 (benchmarks/results/int8.md).
* **What stays fp32.** Excluding, one at a time, the shift Concat/Slice nodes (0.981), the
  classifier Gemm (0.982), the first conv (0.973), or the residual Adds (0.983) changes agreement
  by less than its noise over 1,000 frames (+-0.005), and quantizing only the convs is worse
  (0.965). So the graph I/O (frame, state, logits) stays fp32 by contract, ReduceMean pooling
  stays fp32 (ORT has no QDQ ReduceMean), the classifier is kept fp32 (its cost is negligible and
  the logits are not rounded to an int8 grid: max probability difference 0.270 vs 0.278), and the
  shift stays quantized: ``state_out.i`` is a Slice of an already quantized activation, so it
  leaves the graph on that activation's int8 grid, and the state does not drift (agreement over
  the first and second 500 frames 0.982 / 0.982). Keeping the shift fp32 would also cost time: ORT
  then adds a DQ/Q pair around each of the 10 Concats and 10 Slices of MobileNetV2 (31 DQ + 21 Q nodes
  after its fusions, against 11 + 11), and the two NHWC<->NCHW transposes per shift point that come
  from the NCHW state I/O remain either way (benchmarks/int8.py measures the step latency).
* **Calibration.** MinMax over 300 frames (0.982); 100 frames 0.979, 1,000 frames 0.982,
  percentile 99.99/99.999 0.978, entropy 0.982: more data or other methods buy nothing here.
  (These variants were calibrated on generator seeds 11-13; the defaults as shipped, calibrated
  on the recipe's training seeds, give 0.979 on the same 1,000 frames.)

Before anything is written, the int8 graph is stepped beside the fp32 one over a stream not used
for calibration (state carried on both sides) and must agree on top-1 for at least
``min_agreement`` of the steps (default 0.9: between the saturated graph above, 0.82-0.86, and
the sound ones, 0.97-0.98). The export reports agreement and the max probability difference
instead of the fp32 exporter's 1e-4 tolerance.

Calibration sources (:class:`CalibrationSource`): ``synthetic`` (the gesture generator's
*training* split and the default recipe's training seeds, unpaced: never the held-out test split
accuracy is measured on), a folder of clips, or one video file; frames are sampled to the card's
frame rate by their timestamps and preprocessed with the card's :class:`FramePreprocessor`.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ..card import ModelCard
from ..contract import card_metadata, read_card_from_onnx_metadata
from ..outputs import write_bytes_atomic
from ..postprocess import softmax
from ..preprocess import FramePreprocessor
from ..train.datasets import VIDEO_EXTENSIONS

log = logging.getLogger(__name__)

TARGETS = ("cpu", "tensorrt")
#: Node groups that may be kept fp32 (see the module docstring for what each measured).
FP32_GROUPS = ("shift", "classifier", "first_conv", "pooling")
DEFAULT_KEEP_FP32 = ("classifier",)
DEFAULT_CALIB_FRAMES = 300
DEFAULT_CHECK_FRAMES = 300
DEFAULT_MIN_AGREEMENT = 0.9
#: Synthetic calibration streams are this many steps long (10 s at the default model's 10 fps):
#: several stream starts (zero state) and the steady state in between are both calibrated.
SYNTHETIC_STREAM_STEPS = 100


class Int8Error(RuntimeError):
    """INT8 quantization cannot run as asked, or the int8 graph disagrees with fp32 too much."""


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Int8Config:
    """How to quantize. ``target`` picks the Q/DQ flavour: ``cpu`` (ONNX Runtime) or ``tensorrt``."""

    target: str = "cpu"
    calib_frames: int = DEFAULT_CALIB_FRAMES
    check_frames: int = DEFAULT_CHECK_FRAMES
    min_agreement: float = DEFAULT_MIN_AGREEMENT
    keep_fp32: tuple[str, ...] = DEFAULT_KEEP_FP32

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise Int8Error(f"--int8-target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if not isinstance(self.calib_frames, int) or self.calib_frames < 1:
            raise Int8Error(f"--calib-frames must be a positive number of frames, got {self.calib_frames!r} (default {DEFAULT_CALIB_FRAMES})")
        if not isinstance(self.check_frames, int) or self.check_frames < 1:
            raise Int8Error(f"check frames must be a positive number, got {self.check_frames!r}: an int8 graph is never written unchecked")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise Int8Error(f"--min-agreement must be a fraction in [0, 1], got {self.min_agreement!r} (0 writes whatever the check finds)")
        unknown = sorted(set(self.keep_fp32) - set(FP32_GROUPS))
        if unknown:
            raise Int8Error(f"--keep-fp32 groups {unknown} are unknown; choose from {', '.join(FP32_GROUPS)}")

    @property
    def symmetric_activations(self) -> bool:
        return self.target == "tensorrt"  # TensorRT needs zero point 0

    @property
    def reduce_range(self) -> bool:
        return self.target == "cpu"  # non-VNNI x86 U8S8 kernels saturate with 8-bit weights

    @property
    def activation_type(self) -> str:
        return "int8" if self.symmetric_activations else "uint8"


# --------------------------------------------------------------------------- calibration sources


@dataclass(frozen=True)
class CalibrationSource:
    """Where calibration frames come from: ``synthetic``, a folder of clips, or a video file."""

    kind: str
    path: Path | None = None
    files: tuple[Path, ...] = ()

    @classmethod
    def parse(cls, spec: str | Path) -> "CalibrationSource":
        """Validate ``spec`` without decoding anything (call before long work starts)."""
        if str(spec) == "synthetic":
            return cls("synthetic")
        path = Path(spec)
        if not path.exists():
            raise Int8Error(
                f"--calibrate {str(spec)!r}: no such file or folder; give 'synthetic', a folder of video clips, "
                "or a video file (frames like those the model will see live)"
            )
        if path.is_dir():
            files = tuple(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS))
            if not files:
                raise Int8Error(f"--calibrate {path}: the folder holds no video files ({', '.join(VIDEO_EXTENSIONS)})")
            return cls("folder", path, files)
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise Int8Error(f"--calibrate {path}: not a video file (expected one of {', '.join(VIDEO_EXTENSIONS)}), nor a folder")
        return cls("video", path, (path,))

    def streams(self, card: ModelCard, *, synthetic_offset: int = 0) -> Iterator["Stream"]:
        """The source's streams, each an iterator of BGR frames at the card's frame rate."""
        if self.kind == "synthetic":
            yield from _synthetic_streams(card, synthetic_offset)
        else:
            for f in self.files:
                yield Stream(self._name_of(f), _video_frames(f, card))

    def _name_of(self, f: Path) -> str:
        """A file's name as recorded in the card: relative to the folder (no machine paths)."""
        return f.relative_to(self.path).as_posix() if self.kind == "folder" and self.path is not None else f.name


@dataclass
class Stream:
    """One continuous stream of BGR frames (state starts at zero at its first frame)."""

    name: str
    frames: Iterator[np.ndarray]


def synthetic_calibration_seeds(count: int, offset: int = 0) -> list[int]:
    """Training-split seeds of the default recipe (the clips the default model was trained on)."""
    from ..train.default_model import Recipe, split_seeds

    return split_seeds("train", offset + count, Recipe().train_seed)[offset:]


def _synthetic_streams(card: ModelCard, offset: int) -> Iterator[Stream]:
    from ..synthetic import GestureScript

    fps = card.temporal.fps
    index = 0
    while True:  # as many training seeds as the caller consumes
        (seed,) = synthetic_calibration_seeds(1, offset + index)
        script = GestureScript(seed, duration_s=SYNTHETIC_STREAM_STEPS / fps, fps=fps, split="train")
        yield Stream(f"train seed {seed}", (script.frame_at(i) for i in range(script.num_frames)))
        index += 1


def _video_frames(path: Path, card: ModelCard) -> Iterator[np.ndarray]:
    """Frames of a video file sampled to the card's rate by media time (as a live session would)."""
    from ..sources import SourceError, VideoFileSource
    from ..sampling import FrameSampler

    sampler = FrameSampler(card.temporal.fps, max_gap_s=max(card.temporal.max_gap_s, 1e6))
    try:
        with VideoFileSource(path) as source:
            for frame in source:
                decision = sampler.decide(frame.media_time_s, None)
                sampler.commit(decision, frame.media_time_s, None)
                if decision.keep:
                    yield frame.image
    except SourceError as exc:
        raise Int8Error(f"calibration video: {exc}") from None


@dataclass(frozen=True)
class StreamedFrames:
    """Preprocessed frames grouped in streams (``starts[i]``: index where stream i begins)."""

    frames: list[np.ndarray]
    starts: list[int]
    names: list[str]


def take_frames(streams: Iterable[Stream], count: int, card: ModelCard) -> tuple[StreamedFrames, Iterator[Stream]]:
    """The first ``count`` preprocessed frames, and the streams left over (the one cut short continues)."""
    pre = FramePreprocessor(card.preprocessing)
    it = iter(streams)
    frames: list[np.ndarray] = []
    starts: list[int] = []
    names: list[str] = []
    rest: Stream | None = None
    for stream in it:
        first = True
        for image in stream.frames:
            if first:
                starts.append(len(frames))
                names.append(stream.name)
                first = False
            frames.append(pre(image))
            if len(frames) == count:
                rest = Stream(stream.name + " (rest)", stream.frames)
                break
        if len(frames) == count:
            break
    leftover: Iterator[Stream] = _chain([rest] if rest is not None else [], it)
    return StreamedFrames(frames, starts, names), leftover


def _chain(head: list[Stream], tail: Iterator[Stream]) -> Iterator[Stream]:
    yield from head
    yield from tail


# --------------------------------------------------------------------------- streamed stepping


class OnlineGraph:
    """An ONNX Runtime session of an online graph, stepped with its state carried in numpy."""

    def __init__(self, model: str | Path | bytes, *, float_qdq: bool = False, threads: int | None = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        if float_qdq:  # run Q/DQ as float ops: the quantized arithmetic without any int8 kernel
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        shapes = [i.shape for i in self.session.get_inputs()]
        self.batch = shapes[0][0] if isinstance(shapes[0][0], int) and shapes[0][0] > 0 else 1
        self._state_shapes = [(self.batch, *s[1:]) for s in shapes[1:]]

    def zero_state(self) -> list[np.ndarray]:
        return [np.zeros(s, np.float32) for s in self._state_shapes]

    def feeds(self, frame: np.ndarray, state: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        x = np.repeat(frame[None], self.batch, axis=0) if frame.ndim == 3 else frame
        return dict(zip(self.input_names, [x, *state]))

    def step(self, frame: np.ndarray, state: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        logits, *new_state = self.session.run(self.output_names, self.feeds(frame, state))
        return logits, new_state


def streamed_feeds(graph: OnlineGraph, data: StreamedFrames, progress: bool = False) -> Iterator[dict[str, np.ndarray]]:
    """Each step's feeds of ``graph`` over ``data`` with its own state carried (zero at every stream start)."""
    starts = set(data.starts)
    state = graph.zero_state()
    frames: Iterable[tuple[int, np.ndarray]] = enumerate(data.frames)
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, total=len(data.frames), desc="calibrating (streamed)", unit="frame", leave=False)
    for i, frame in frames:
        if i in starts:
            state = graph.zero_state()
        feeds = graph.feeds(frame, state)
        yield feeds
        state = graph.session.run(graph.output_names, feeds)[1:]


class StreamedCalibrationReader:
    """The calibrator's input: the fp32 graph's per-step feeds, state carried.

    Duck-typed ``onnxruntime.quantization.CalibrationDataReader`` (it recognises any object with
    ``get_next``), so importing this module does not import the quantization tool.
    """

    def __init__(self, graph: OnlineGraph, data: StreamedFrames, progress: bool = False) -> None:
        self._feeds = streamed_feeds(graph, data, progress)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


@dataclass(frozen=True)
class Int8Check:
    """How the int8 graph tracked fp32 over a stream (state carried on both sides)."""

    steps: int
    top1_agreement: float
    max_prob_diff: float
    mean_prob_diff: float
    agreement_first_half: float
    agreement_second_half: float
    held_out: bool = True  # False when the source was too short to check on frames not used for calibration
    kernels: str = "onnxruntime int8"

    def passes(self, min_agreement: float) -> bool:
        return self.top1_agreement >= min_agreement  # False for NaN

    def summary(self) -> str:
        where = "held-out frames" if self.held_out else "the calibration frames (source too short to hold any out)"
        return (f"int8 vs fp32 over {self.steps} streamed steps of {where} ({self.kernels}): top-1 agreement "
                f"{self.top1_agreement:.3f} (first half {self.agreement_first_half:.3f}, second half "
                f"{self.agreement_second_half:.3f}), max |prob diff| {self.max_prob_diff:.3f}, mean {self.mean_prob_diff:.4f}")


def streamed_agreement(reference: OnlineGraph, other: OnlineGraph, data: StreamedFrames,
                       progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per step: whether both graphs' top-1 agree, and the max |probability difference| (own state each)."""
    starts = set(data.starts)
    agree, diff = [], []
    frames: Iterable[tuple[int, np.ndarray]] = enumerate(data.frames)
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, total=len(data.frames), desc="checking int8 vs fp32", unit="frame", leave=False)
    for i, frame in frames:
        if i in starts:
            a, b = reference.zero_state(), other.zero_state()
        la, a = reference.step(frame, a)
        lb, b = other.step(frame, b)
        pa, pb = softmax(la.astype(np.float64)), softmax(lb.astype(np.float64))
        agree.append(bool(np.all(pa.argmax(-1) == pb.argmax(-1))))
        d = np.abs(pa - pb)
        diff.append(float(d.max()) if np.all(np.isfinite(d)) else float("inf"))
    return np.asarray(agree, float), np.asarray(diff)


def compare_streamed(reference: OnlineGraph, other: OnlineGraph, data: StreamedFrames, *, held_out: bool = True,
                     kernels: str = "onnxruntime int8", progress: bool = False) -> Int8Check:
    """Step both graphs over ``data``, each carrying its own state, and summarise how they agree."""
    ag, df = streamed_agreement(reference, other, data, progress)
    if not len(ag):
        raise Int8Error("the int8 check got no frames from the source")
    half = max(1, len(ag) // 2)
    return Int8Check(len(ag), float(ag.mean()), float(df.max()), float(df.mean()), float(ag[:half].mean()),
                     float(ag[half:].mean()) if len(ag) > half else float(ag.mean()), held_out, kernels)


# --------------------------------------------------------------------------- graph inspection


def fp32_nodes(model: Any, groups: Sequence[str]) -> dict[str, list[str]]:
    """Node names of each group in ``groups`` (found from the graph's structure and I/O names)."""
    graph = model.graph
    state_in = {i.name for i in graph.input if i.name.startswith("state_in.")}
    state_out = {o.name for o in graph.output if o.name.startswith("state_out.")}
    concats = [n for n in graph.node if n.op_type == "Concat" and state_in & set(n.input)]
    concat_inputs = {i for n in concats for i in n.input}
    found = {
        "shift": [n.name for n in concats]
        + [n.name for n in graph.node if n.op_type == "Slice" and (set(n.output) & (state_out | concat_inputs))],
        "classifier": [n.name for n in graph.node if "logits" in n.output and n.op_type in ("Gemm", "MatMul", "Add", "Conv")],
        "first_conv": [n.name for n in graph.node if n.op_type == "Conv" and graph.input[0].name in n.input][:1],
        "pooling": [n.name for n in graph.node if n.op_type in ("MaxPool", "AveragePool", "GlobalAveragePool", "ReduceMean")],
    }
    return {g: found[g] for g in groups}


def count_qdq(model: Any) -> int:
    return sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


# --------------------------------------------------------------------------- quantization


def quantize_online(
    fp32_path: str | Path,
    out: str | Path,
    source: CalibrationSource,
    config: Int8Config = Int8Config(),
    *,
    progress: bool = False,
) -> tuple[Path, Int8Check]:
    """Quantize the exported online graph ``fp32_path`` into ``out`` (written only if the check passes)."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_path, out = Path(fp32_path), Path(out)
    if out.suffix != ".onnx":
        raise Int8Error(f"output {out} should end in .onnx")
    if out.resolve() == fp32_path.resolve():
        raise Int8Error(f"the int8 output {out} would overwrite its fp32 input; choose another -o")
    fp32_model = onnx.load(str(fp32_path))
    card = read_card_from_onnx_metadata({p.key: p.value for p in fp32_model.metadata_props}, str(fp32_path))
    if not card.is_online:
        raise Int8Error(f"{card.arch} is a window (clip) model: --int8 quantizes online per-frame graphs only")
    if card.precision != "fp32" or count_qdq(fp32_model):
        raise Int8Error(f"{fp32_path} is already quantized (precision {card.precision}); quantize the fp32 export")
    reference = OnlineGraph(fp32_path)
    calibration, rest = take_frames(source.streams(card), config.calib_frames, card)
    if len(calibration.frames) < config.calib_frames:
        log.warning("calibration source gave %d frames, fewer than the %d asked for", len(calibration.frames), config.calib_frames)
    if not calibration.frames:
        raise Int8Error("the calibration source yielded no frames")
    if source.kind == "synthetic":  # other training seeds than the calibration streams
        rest = source.streams(card, synthetic_offset=len(calibration.starts))
    check, _ = take_frames(rest, config.check_frames, card)
    held_out = len(check.frames) >= min(config.check_frames, 50)
    if not held_out:
        check = StreamedFrames(calibration.frames[: config.check_frames], [s for s in calibration.starts if s < config.check_frames],
                               calibration.names)
    keep = fp32_nodes(fp32_model, config.keep_fp32)
    with tempfile.TemporaryDirectory(prefix="streamtsm-int8-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quantized = Path(tmp) / "int8.onnx"
        quant_pre_process(str(fp32_path), str(pre))  # shape inference + constant folding, as ORT recommends
        quantize_static(
            str(pre), str(quantized), StreamedCalibrationReader(reference, calibration, progress),
            quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=config.reduce_range,
            activation_type=QuantType.QInt8 if config.symmetric_activations else QuantType.QUInt8,
            weight_type=QuantType.QInt8, nodes_to_exclude=[n for names in keep.values() for n in names],
            calibrate_method=CalibrationMethod.MinMax,
            extra_options=_extra_options(config),
        )
        model = onnx.load(str(quantized))
    float_qdq = config.target == "tensorrt"  # TensorRT's int8 kernels do not saturate; ORT's non-VNNI ones would
    kernels = "Q/DQ run as float ops (what TensorRT computes)" if float_qdq else f"onnxruntime {onnxruntime.__version__} int8 kernels"
    int8_graph = OnlineGraph(model.SerializeToString(), float_qdq=float_qdq)
    result = compare_streamed(reference, int8_graph, check, held_out=held_out, kernels=kernels, progress=progress)
    if not result.passes(config.min_agreement):
        raise Int8Error(
            f"{result.summary()}: below --min-agreement {config.min_agreement:g}. {out} was NOT written. Calibrate on frames "
            "like the live ones (more of them: --calib-frames), keep more layers fp32 (--keep-fp32), or pass "
            "--min-agreement 0 to write it anyway (e.g. random weights for latency work)."
        )
    int8_card = card.replace(precision="int8", calibration=calibration_record(source, calibration, config, keep, result))
    del model.metadata_props[:]
    for key, value in card_metadata(int8_card).items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = f"streamtsm int8 (QDQ, {config.target}) export of {card.arch} (online, per frame)"
    write_bytes_atomic(out, model.SerializeToString())
    return out, result


def _extra_options(config: Int8Config) -> dict[str, Any]:
    options: dict[str, Any] = {"ActivationSymmetric": config.symmetric_activations, "WeightSymmetric": True}
    if config.target == "tensorrt":
        # TensorRT's explicit quantization: float bias (it fuses bias itself; no int32 DQ), one Q/DQ pair per
        # consumer (TensorRT does not share a pair between layers), and weights as float + Q/DQ pairs.
        options.update(QuantizeBias=False, DedicatedQDQPair=True, AddQDQPairToWeight=True)
    return options


def calibration_record(source: CalibrationSource, data: StreamedFrames, config: Int8Config,
                       kept: dict[str, list[str]], check: Int8Check) -> dict[str, Any]:
    """What the card says about the calibration (everything needed to redo it)."""
    import onnxruntime

    record: dict[str, Any] = {
        "source": source.kind,
        "frames": len(data.frames),
        "streams": len(data.starts),
        "method": "MinMax, streamed: fp32 graph stepped with its state carried, zero state at each stream start",
        "quantizer": f"onnxruntime {onnxruntime.__version__} quantize_static, QDQ",
        "target": config.target,
        "per_channel": True,
        "activation_type": f"{config.activation_type} {'symmetric' if config.symmetric_activations else 'asymmetric'}",
        "weight_type": "int8 symmetric per-channel" + (" (7-bit, reduce_range)" if config.reduce_range else ""),
        "excluded": {"graph_io": "frame, state_in/out, logits stay float32 tensors",
                     "ops_without_qdq": "ReduceMean pooling",
                     **{group: nodes for group, nodes in kept.items()}},
        "check": {k: v for k, v in asdict(check).items()},
    }
    if source.kind == "synthetic":
        record["split"] = "train"
        record["seeds"] = [int(n.split()[-1]) for n in data.names]
    else:
        record["files"] = sorted(set(n.removesuffix(" (rest)") for n in data.names))
    return record
