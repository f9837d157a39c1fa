"""ONNX export with state I/O, checked against torch before anything is written.

An online TSM becomes a per-frame graph ``(frame, state_in.0…) -> (logits, state_out.0…)``:
the same pure function as ``OnlineTSM.forward``, so whoever runs it (ONNX Runtime, TensorRT,
Triton's sequence batcher) carries the state. Window models (3D CNNs, TSM/TSN run on clips)
take one ``clip`` input. The model card, with its state spec filled from the model, is stored
in the ONNX metadata so the file alone is enough to run it.

Exporter: the legacy TorchScript exporter (``dynamo=False``). With torch 2.13 the dynamo
exporter also works for these graphs, but it ignores the requested opset (it emits 18 and
fails to down-convert), is ~5x slower and prints pages of progress; the TorchScript exporter
honours ``opset``, gives static shapes exactly as traced and keeps our slices as plain
``Slice``/``Concat`` nodes (no in-place slice assignment exists in the models, and
``online_shift`` never builds empty slices, so no zero-size tensors appear).

Every dimension the card fixes (all but a dynamic batch) is declared static in the graph:
the tracer leaves some symbolic (a window TSM/TSN averages per-frame logits over the clip with
``reshape(n, t, -1).mean(1)``, whose class dimension it names ``ReduceMeanlogits_dim_1``), and
the runtime refuses a graph whose I/O differs from its card.

Nothing reaches ``path`` unless the ONNX checker passes, the graph's declared I/O is the one
its card implies (the runtime's own check), and ONNX Runtime agrees with torch (same output
shapes; max abs difference of logits and carried state <= ``tolerance``, scaled by the output
magnitude once that exceeds 1) over ``check_steps`` steps of random frames, state carried
separately on each side so drift would accumulate and show. A dynamic-batch graph is also run
at a second batch size, so one that works only at the traced batch is refused too.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..contract import MAX_OPSET, MIN_OPSET, ContractError, GraphSignature, card_metadata, check_graph_io, graph_signature
from ..card import ModelCard, StateTensor
from ..outputs import write_bytes_atomic

DEFAULT_TOLERANCE = 1e-4

log = logging.getLogger(__name__)


class ExportError(RuntimeError):
    """A model cannot be exported, or the exported graph disagrees with torch."""


@dataclass(frozen=True)
class ExportCheck:
    """How closely ONNX Runtime reproduced torch during the pre-write check."""

    steps: int
    max_logit_diff: float
    max_state_diff: float
    #: max |torch output| seen (logits and state): float32 error grows with magnitude, so the
    #: tolerance is relative once outputs exceed 1 (random-weight ResNet-50 logits reach ~100)
    reference_scale: float = 1.0
    #: the batch sizes run (a dynamic-batch graph is also run at a second one)
    batches: tuple[int, ...] = (1,)

    def passes(self, tolerance: float) -> bool:
        worst = max(self.max_logit_diff, self.max_state_diff)
        return worst <= tolerance * max(1.0, self.reference_scale)  # False for NaN


def card_with_state(model: nn.Module) -> ModelCard:
    """The model's card with ``state`` filled from the model (online TSM) or emptied (window)."""
    card: ModelCard | None = getattr(model, "card", None)
    if card is None:
        raise ExportError("export needs a model with a .card (build it with create_model or load_model)")
    if not card.is_online:
        return card.replace(state=())
    from ..models.online import NotOnlineCapableError, to_online

    try:
        online = to_online(model)
    except NotOnlineCapableError as exc:
        raise ExportError(
            f"{card.arch} has a bidirectional shift and cannot be exported as a per-frame model: {exc}. To export "
            "it as a window (clip) model, set its card's temporal.mode to 'window' with clip_len = num_segments."
        ) from None
    except TypeError:
        raise ExportError(f"{card.arch}: the card says online, but the model is not a TSM network") from None
    crop = card.preprocessing.crop_size
    shapes = online.state_shapes(1, crop, crop)
    return card.replace(state=tuple(StateTensor(f"state_in.{i}", tuple(s)) for i, s in enumerate(shapes)))


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    batch_size: int = 1,
    dynamic_batch: bool = False,
    opset: int = 17,
    check_steps: int = 4,
    tolerance: float = DEFAULT_TOLERANCE,
    progress: bool = False,
) -> Path:
    """Export ``model`` (with a ``.card``) to ``path`` and return it.

    ``batch_size`` fixes the number of streams (online) or clips (window) per call;
    ``dynamic_batch`` makes that dimension symbolic instead (one graph for any number of
    cameras, as Triton's batcher needs). Raises ``ExportError`` without writing if the graph
    fails the checker or differs from torch by more than ``tolerance``.
    """
    import onnx

    if batch_size < 1:
        raise ExportError(f"batch_size must be >= 1, got {batch_size}")
    if check_steps < 1:
        raise ExportError("check_steps must be >= 1: an export is never written unchecked")
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset must be an integer from {MIN_OPSET} to {MAX_OPSET}, got {opset!r}")
    out = Path(path)
    if out.suffix != ".onnx":
        raise ExportError(f"output {out} should end in .onnx")
    card = card_with_state(model)
    was_training = model.training
    model.eval()  # BatchNorm must use running statistics in the trace AND in the torch side of the check
    try:
        net = _graph_module(model, card)
        signature = graph_signature(card, batch_size)
        proto = _trace(net, signature, dynamic_batch, opset)
        declare_static_dims(proto, signature)
        del proto.metadata_props[:]
        for key, value in card_metadata(card).items():
            proto.metadata_props.add(key=key, value=value)
        kind = "online, per frame" if card.is_online else "window, per clip"
        proto.doc_string = f"streamtsm export of {card.arch} ({kind})"
        data = proto.SerializeToString()
        try:
            onnx.checker.check_model(proto, full_check=True)
        except Exception as exc:
            raise ExportError(f"the exported graph of {card.arch} fails the ONNX checker: {exc}") from None
        check = verify_against_torch(
            net, data, signature, steps=check_steps, progress=progress, dynamic_batch=dynamic_batch, what=f"{card.arch} for {out}"
        )
    finally:
        model.train(was_training)
    if not check.passes(tolerance):
        raise ExportError(
            f"ONNX Runtime disagrees with torch for {card.arch}: max |logits diff| = {check.max_logit_diff:.3g}, "
            f"max |state diff| = {check.max_state_diff:.3g} over {check.steps} steps (tolerance {tolerance:g} x max(1, output scale {check.reference_scale:.3g})). "
            f"{out} was NOT written. This usually means an op the exporter mistranslates; try another --opset."
        )
    log.info(
        "ONNX Runtime matches torch over %d %s (batch %s): max |logits diff| %.2g, max |state diff| %.2g",
        check.steps, "steps" if card.is_online else "clips", " and ".join(map(str, check.batches)),
        check.max_logit_diff, check.max_state_diff,
    )
    return write_bytes_atomic(out, data)  # temp name unique per process: parallel exports never mix


def _graph_module(model: nn.Module, card: ModelCard) -> nn.Module:
    if not card.is_online:
        return model
    from ..models.online import to_online

    return to_online(model).eval()


def declare_static_dims(proto, signature: GraphSignature) -> None:
    """Give every graph input/output the static sizes the card implies where the tracer left a dimension symbolic.

    The batch dimension (0) is left as traced (symbolic for ``dynamic_batch``). A dimension the
    graph already declares with another size is left too: the I/O check then refuses the graph.
    The values the graph really produces are checked against torch afterwards, so a declared
    size can never hide a wrong one.
    """
    specs = {t.name: t for t in (*signature.inputs, *signature.outputs)}
    for value in (*proto.graph.input, *proto.graph.output):
        spec = specs.get(value.name)
        if spec is None or not value.type.HasField("tensor_type"):
            continue
        dims = value.type.tensor_type.shape.dim
        if len(dims) != len(spec.shape):
            continue
        for dim, size in list(zip(dims, spec.shape))[1:]:
            if not dim.HasField("dim_value"):
                dim.Clear()
                dim.dim_value = size


def _ort_dims(shape) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in shape)


def check_session_io(session, signature: GraphSignature, dynamic_batch: bool | None, what: str) -> None:
    """The runtime's I/O check on a session of the exported graph (and the batch kind asked for)."""
    dtypes = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64"}
    found_in = {i.name: (_ort_dims(i.shape), dtypes.get(i.type, i.type)) for i in session.get_inputs()}
    found_out = {o.name: (_ort_dims(o.shape), dtypes.get(o.type, o.type)) for o in session.get_outputs()}
    try:
        dynamic = check_graph_io(signature, found_in, found_out, "the exported graph")
    except ContractError as exc:
        raise ExportError(f"{what}: {str(exc).split('. It was not written')[0]}; nothing was written") from None
    if dynamic_batch is not None and dynamic != dynamic_batch:
        want, got = ("dynamic", "fixed") if dynamic_batch else ("fixed", "dynamic")
        raise ExportError(f"{what}: a {want} batch was asked for but the exported graph has a {got} one; nothing was written")


def _example_inputs(signature: GraphSignature, rng: np.random.Generator, device: torch.device, batch: int) -> list[torch.Tensor]:
    """Random normalised frame/clip (mean 0, std 1 like a preprocessed image) and zero state."""
    main = signature.inputs[0]
    x = torch.from_numpy(rng.standard_normal((batch, *main.shape[1:]), dtype=np.float32)).to(device)
    states = [torch.zeros((batch, *s.shape[1:]), dtype=torch.float32, device=device) for s in signature.inputs[1:]]
    return [x, *states]


def _trace(net: nn.Module, signature: GraphSignature, dynamic_batch: bool, opset: int):
    import onnx

    device = next(net.parameters()).device
    inputs = _example_inputs(signature, np.random.default_rng(0), device, signature.inputs[0].shape[0])
    dynamic_axes = {n: {0: "batch"} for n in signature.input_names + signature.output_names} if dynamic_batch else None
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The legacy exporter is deprecated in favour of dynamo; see the module docstring for why we use it.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        try:
            torch.onnx.export(
                net,
                tuple(inputs),
                buffer,
                input_names=signature.input_names,
                output_names=signature.output_names,
                opset_version=opset,
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
                dynamo=False,
            )
        except Exception as exc:
            raise ExportError(f"torch.onnx.export failed (opset {opset}): {type(exc).__name__}: {str(exc)[:400]}") from None
    return onnx.load_from_string(buffer.getvalue())


def verify_against_torch(
    net: nn.Module,
    onnx_bytes: bytes,
    signature: GraphSignature,
    *,
    steps: int = 4,
    progress: bool = False,
    seed: int = 1,
    dynamic_batch: bool | None = None,
    what: str = "the exported graph",
) -> ExportCheck:
    """Run torch and ONNX Runtime side by side on random inputs, each carrying its own state.

    First the session's I/O must be the one ``signature`` describes (as the runtime checks it;
    ``dynamic_batch`` True/False also requires that kind of batch). Then ``steps`` steps at the
    signature's batch and, for a dynamic batch, one step at a second batch size. Output shapes
    must equal torch's exactly (a (1, K) vs (K,) difference would broadcast in the comparison).
    """
    import onnxruntime as ort

    try:
        options = ort.SessionOptions()  # one non-spinning thread: a check must not fight the CPU's other work
        options.intra_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(f"ONNX Runtime cannot load the exported graph: {str(exc).splitlines()[0][:300]}") from None
    check_session_io(session, signature, dynamic_batch, what)
    rng = np.random.default_rng(seed)
    batch = signature.inputs[0].shape[0]
    runs = [(batch, steps)] + ([(batch + 1, 1)] if dynamic_batch else [])
    total = sum(n for _, n in runs)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="checking ONNX Runtime vs torch", unit="step", leave=False)
    max_logit = max_state = scale = 0.0
    try:
        for run_batch, run_steps in runs:
            logit, state, run_scale = _compare_steps(net, session, signature, run_batch, run_steps, rng, what, bar)
            max_logit, max_state, scale = max(max_logit, logit), max(max_state, state), max(scale, run_scale)
    finally:
        if bar is not None:
            bar.close()
    return ExportCheck(total, max_logit, max_state, scale, tuple(b for b, _ in runs))


def _compare_steps(net, session, signature: GraphSignature, batch: int, steps: int, rng, what: str, bar) -> tuple[float, float, float]:
    device = next(net.parameters()).device
    torch_inputs = _example_inputs(signature, rng, device, batch)
    ort_state = [t.cpu().numpy() for t in torch_inputs[1:]]
    state_in = signature.input_names[1:]
    max_logit = max_state = scale = 0.0
    for step in range(steps):
        if step:
            main = rng.standard_normal(tuple(torch_inputs[0].shape), dtype=np.float32)
            torch_inputs[0] = torch.from_numpy(main).to(device)
        with torch.no_grad():
            result = net(*torch_inputs)
        torch_out = [t.cpu().numpy() for t in (result if isinstance(result, (tuple, list)) else (result,))]
        feeds = {signature.input_names[0]: torch_inputs[0].cpu().numpy(), **dict(zip(state_in, ort_state))}
        try:
            ort_out = session.run(signature.output_names, feeds)
        except Exception as exc:
            raise ExportError(f"{what}: ONNX Runtime fails to run the exported graph at batch {batch}: "
                              f"{str(exc).splitlines()[0][:300]}; nothing was written") from None
        for name, a, b in zip(signature.output_names, ort_out, torch_out):
            if a.shape != b.shape:
                raise ExportError(f"{what}: at batch {batch} ONNX Runtime gives {name!r} of shape {a.shape}, torch "
                                  f"{b.shape}; nothing was written")
        max_logit = max(max_logit, _max_abs_diff(ort_out[0], torch_out[0]))
        scale = max([scale] + [float(np.abs(t).max()) for t in torch_out if t.size])
        for a, b in zip(ort_out[1:], torch_out[1:]):
            max_state = max(max_state, _max_abs_diff(a, b))
        torch_inputs = [torch_inputs[0], *result[1:]] if len(torch_out) > 1 else torch_inputs
        ort_state = list(ort_out[1:])
        if bar is not None:
            bar.update(1)
    return max_logit, max_state, scale


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Max |a - b|; infinity when either side is not finite (NaN must never pass a check)."""
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float(d.max()) if d.size and np.all(np.isfinite(d)) else (0.0 if not d.size else float("inf"))
