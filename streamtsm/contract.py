"""The exported-graph contract: what every ``.onnx``/``.plan`` written by streamtsm looks like.

One place defines the tensors an exported model has, derived from its card only, so the
exporter (which writes them), the engines (which bind them) and the Triton generator (which
declares them) cannot drift apart:

* inputs ``frame`` (online, (N, 3, H, W)) or ``clip`` (window), then ``state_in.{i}``;
* outputs ``logits`` (N, K), then ``state_out.{i}``: the next step's ``state_in.{i}``;
* the model card as JSON under the ONNX metadata key ``streamtsm.card``.

A graph whose I/O differs from its card is refused before it runs: a wrong state layout
would run and quietly give wrong predictions. torch-free (numpy is not even needed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from .card import CardError, ModelCard

#: ONNX ``metadata_props`` key holding the model card JSON.
CARD_METADATA_KEY = "streamtsm.card"

#: ONNX opsets an export may be written in. torch 2.13's TorchScript exporter writes 7-20 (above
#: 20 it warns and is unsupported; 99 fails deep inside torch) and ONNX Runtime runs 7 and up,
#: but below 10 the ONNX ``Slice`` op has no step, which SlowFast's strided frame sampling needs:
#: 10-20 is the range in which every architecture of the registry exports.
MIN_OPSET, MAX_OPSET = 10, 20


class ContractError(RuntimeError):
    """A graph or engine does not follow the exported-graph contract of its card."""


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output. ``shape[0]`` is the batch (streams) dimension."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class GraphSignature:
    """Inputs and outputs an exported graph must have, derived from its card only.

    ``inputs[0]`` is ``frame``/``clip``, ``outputs[0]`` is ``logits``; ``state_pairs`` lists
    ``(state_in.i, state_out.i)``: the output that becomes the next step's input.
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    state_pairs: tuple[tuple[str, str], ...]

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]


def state_output_name(state_input_name: str) -> str:
    """``state_in.3`` -> ``state_out.3``."""
    if not state_input_name.startswith("state_in."):
        raise CardError(f"state tensor names must look like 'state_in.<i>', got {state_input_name!r}")
    return "state_out." + state_input_name[len("state_in.") :]


def graph_signature(card: ModelCard, batch_size: int = 1) -> GraphSignature:
    """The exported graph's I/O for ``card`` with ``batch_size`` streams (or clips)."""
    if batch_size < 1:
        raise ContractError(f"batch_size must be >= 1, got {batch_size}")
    crop = card.preprocessing.crop_size
    if card.is_online:
        main = TensorSpec("frame", (batch_size, 3, crop, crop))
    else:
        t = card.temporal.clip_len
        shape = (batch_size, 3, t, crop, crop) if card.temporal.clip_layout == "NCTHW" else (batch_size, t, 3, crop, crop)
        main = TensorSpec("clip", shape)
    states_in = tuple(TensorSpec(s.name, (batch_size, *s.shape[1:]), s.dtype) for s in card.state)
    states_out = tuple(TensorSpec(state_output_name(s.name), s.shape, s.dtype) for s in states_in)
    return GraphSignature(
        inputs=(main, *states_in),
        outputs=(TensorSpec("logits", (batch_size, card.num_classes)), *states_out),
        state_pairs=tuple((i.name, o.name) for i, o in zip(states_in, states_out)),
    )


def check_graph_io(
    signature: GraphSignature,
    found_inputs: Mapping[str, tuple[Sequence[int], str]],
    found_outputs: Mapping[str, tuple[Sequence[int], str]],
    what: str,
) -> bool:
    """Compare a graph's I/O (name -> (shape with -1 for dynamic dims, dtype)) with ``signature``.

    Returns whether the batch dimension is dynamic (the same for every tensor). Raises
    :class:`ContractError` naming every difference: expected vs found.
    """
    problems: list[str] = []
    dynamic: set[bool] = set()
    for kind, expected, found in (("input", signature.inputs, found_inputs), ("output", signature.outputs, found_outputs)):
        want = {t.name: t for t in expected}
        missing = [n for n in want if n not in found]
        unexpected = [n for n in found if n not in want]
        if missing:
            problems.append(f"missing {kind}s {missing}")
        if unexpected:
            problems.append(f"unexpected {kind}s {unexpected}")
        for name, spec in want.items():
            if name not in found:
                continue
            shape, dtype = tuple(int(d) for d in found[name][0]), found[name][1]
            batch_ok = len(shape) == len(spec.shape) and shape[0] in (spec.shape[0], -1)
            if not batch_ok or shape[1:] != spec.shape[1:]:
                problems.append(f"{kind} {name!r}: expected shape {spec.shape} (batch may be dynamic), found {shape}")
            elif shape:
                dynamic.add(shape[0] == -1)
            if dtype != spec.dtype:
                problems.append(f"{kind} {name!r}: expected dtype {spec.dtype}, found {dtype}")
    if len(dynamic) > 1:
        problems.append("some tensors have a dynamic batch dimension and others a fixed one")
    if problems:
        raise ContractError(
            f"{what} does not match its model card: " + "; ".join(problems)
            + ". It was not written by this version of `streamtsm export`, or was edited; re-export it with "
            "`streamtsm export MODEL -o engines/NAME.onnx`."
        )
    return dynamic == {True}


def card_metadata(card: ModelCard) -> dict[str, str]:
    """The ONNX ``metadata_props`` entries that carry ``card`` (what the exporter writes)."""
    return {CARD_METADATA_KEY: card.to_json(indent=None)}


def read_card_from_onnx_metadata(metadata: Mapping[str, str], what: str) -> ModelCard:
    """The card stored by the exporter in the graph metadata, or a clear refusal."""
    text = metadata.get(CARD_METADATA_KEY)
    if text is None:
        raise ContractError(
            f"{what} has no streamtsm model card in its metadata (key {CARD_METADATA_KEY!r}), so its class names, "
            "preprocessing and state layout are unknown. Export the model with `streamtsm export MODEL -o "
            "engines/NAME.onnx`, which stores the card in the file."
        )
    try:
        return ModelCard.from_json(text)
    except CardError as exc:
        raise ContractError(f"{what}: the model card in its metadata is unusable: {exc}") from None
