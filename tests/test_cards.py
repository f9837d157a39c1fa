"""One strict card validator: each broken card is refused with one line naming the field.

Table-driven: (what is changed in a valid card) -> (fragment of the message). Every row goes
through the two ways a card reaches the runtime without torch: a ``.card.json`` file
(``ModelCard.load``) and the metadata of an ONNX file opened by ``open_onnxruntime``. The
ONNX file is a tiny graph built with ``onnx.helper``: the card is checked before the graph's
I/O, so the graph only has to be valid ONNX. A guard test shows the valid base card passes
both ways, so each refusal is about the one thing its row changes.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from streamtsm.card import CARD_VERSION, CardError, ModelCard, Preprocessing, StateTensor, Temporal

pytestmark = pytest.mark.runtime  # torch-free: CI runs these again with torch unimportable

DELETE = object()


def base_card() -> dict[str, Any]:
    """A valid version-2 card of a small online model (80 px, 3 classes, 2 state tensors)."""
    card = ModelCard(
        arch="tsm_mobilenetv2",
        arch_kwargs={"num_classes": 3, "width_mult": 0.5, "shift_mode": "uni"},
        class_names=("swipe_left", "swipe right", "no_motion"),
        preprocessing=Preprocessing(crop_size=80, resize_short=80),
        temporal=Temporal(mode="online", fps=10.0, num_segments=12, clip_layout="NTCHW"),
        shift_mode="uni",
        background_classes=("no_motion",),
        state=(StateTensor("state_in.0", (1, 2, 40, 40)), StateTensor("state_in.1", (1, 4, 20, 20))),
        weights_sha256="ab" * 32,
        unverified=("fps",),
    )
    return json.loads(card.to_json())


def changed(path: str, value: Any) -> dict[str, Any]:
    """The base card with ``path`` ('a.b.0' style) set to ``value`` (or removed: DELETE)."""
    card = base_card()
    *parents, last = path.split(".")
    node: Any = card
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    key: Any = int(last) if isinstance(node, list) else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = copy.deepcopy(value)
    return card


NAN, INF = math.nan, math.inf

# (id, card, fragment expected in the one-line message)
BAD_CARDS = [
    # the cases of issue 14 row 8
    ("mean NaN", changed("preprocessing.mean", [NAN] * 3), "preprocessing.mean[0] must be a finite number from 0 to 255, got nan"),
    ("std inf", changed("preprocessing.std", [INF] * 3), "preprocessing.std[0] must be a finite number above 0"),
    ("preprocessing null", changed("preprocessing", None), "preprocessing must be a JSON object, got None"),
    ("preprocessing missing", changed("preprocessing", DELETE), "lacks required field 'preprocessing'"),
    ("card_version 'abc'", changed("card_version", "abc"), f"card_version must be an integer from 1 to {CARD_VERSION}, got 'abc'"),
    ("crop_size 80.5", changed("preprocessing.crop_size", 80.5), "preprocessing.crop_size must be an integer from 8 to 4096, got 80.5"),
    ("preprocessing a list", changed("preprocessing", [1, 2]), "preprocessing must be a JSON object, got [1, 2]"),
    ("num_classes 0", changed("arch_kwargs.num_classes", 0), "arch_kwargs.num_classes must be an integer from 1"),
    ("no class names", {**changed("class_names", []), "arch_kwargs": {}, "background_classes": []}, "class_names must be a list of 1 to"),
    ("newline in a class name", changed("class_names.1", "swipe\nright"), "class_names[1] must be a non-empty single-line class name"),
    ("duplicate class names", changed("class_names.1", "swipe_left"), "class_names must be unique: 'swipe_left' appears at index 0 and 1"),
    # the other fields
    ("card_version missing", changed("card_version", DELETE), "card_version is missing"),
    ("card_version newer", changed("card_version", CARD_VERSION + 1), "newer than this streamtsm understands"),
    ("card_version true", changed("card_version", True), "card_version must be an integer"),
    ("v2 field in a v1 card", changed("card_version", 1), "precision is a card_version 2 field, but the card says card_version 1"),
    ("unknown top-level field", changed("colour", "RGB"), "unknown card field 'colour'"),
    ("unknown preprocessing field", changed("preprocessing.scale", 2), "unknown field preprocessing.scale"),
    ("preprocessing.mean missing", changed("preprocessing.mean", DELETE), "preprocessing.mean is missing"),
    ("two resizes", changed("preprocessing.resize_hw", [90, 120]), "exactly one of resize_short"),
    ("no resize", changed("preprocessing.resize_short", None), "exactly one of resize_short"),
    ("resize below crop", changed("preprocessing.resize_short", 64), "preprocessing.resize_short must be an integer from crop_size (80) to 4096, got 64"),
    ("resize_hw of 3", changed("preprocessing", {**base_card()["preprocessing"], "resize_short": None, "resize_hw": [90, 100, 3]}),
     "preprocessing.resize_hw must be a list of 2 values"),
    ("crop too large", changed("preprocessing.crop_size", 100_000), "preprocessing.crop_size must be an integer from 8 to 4096"),
    ("mean of two", changed("preprocessing.mean", [1.0, 2.0]), "preprocessing.mean must be a list of 3 values"),
    ("mean as text", changed("preprocessing.mean", ["1", "2", "3"]), "preprocessing.mean[0] must be a finite number"),
    ("std zero", changed("preprocessing.std.2", 0), "preprocessing.std[2] must be a finite number above 0"),
    ("channel order", changed("preprocessing.channel_order", "RGBA"), "preprocessing.channel_order must be one of 'RGB', 'BGR'"),
    ("temporal null", changed("temporal", None), "temporal must be a JSON object"),
    ("temporal.fps missing", changed("temporal.fps", DELETE), "temporal.fps is missing"),
    ("fps NaN", changed("temporal.fps", NAN), "temporal.fps must be a finite number above 0 and at most 1000, got nan"),
    ("fps zero", changed("temporal.fps", 0), "temporal.fps must be a finite number above 0"),
    ("fps text", changed("temporal.fps", "30"), "temporal.fps must be a finite number"),
    ("clip_len 0", changed("temporal.clip_len", 0), "temporal.clip_len must be an integer from 1 to 1024"),
    ("max_gap_s inf", changed("temporal.max_gap_s", INF), "temporal.max_gap_s must be a finite number"),
    ("temporal mode", changed("temporal.mode", "offline"), "temporal.mode must be one of 'online', 'window'"),
    ("clip layout", changed("temporal.clip_layout", "NHWC"), "temporal.clip_layout must be one of"),
    ("shift_mode", changed("shift_mode", "left"), "shift_mode must be one of 'uni', 'bi', 'none'"),
    ("shift_mode missing", changed("shift_mode", DELETE), "lacks required field 'shift_mode'"),
    ("shift_mode disagrees", changed("arch_kwargs.shift_mode", "bi"), "shift_mode is 'uni' but arch_kwargs.shift_mode is 'bi'"),
    ("arch empty", changed("arch", ""), "arch must be a registry model name"),
    ("arch_kwargs a list", changed("arch_kwargs", [3]), "arch_kwargs must be a JSON object"),
    ("arch_kwargs NaN", changed("arch_kwargs.width_mult", NAN), "arch_kwargs.width_mult must be finite"),
    ("arch_kwargs key", changed("arch_kwargs", {"num_classes": 3, "not a name": 1}), "arch_kwargs keys must be Python argument names"),
    ("num_classes mismatch", changed("arch_kwargs.num_classes", 4), "arch_kwargs.num_classes=4 but 3 class names"),
    ("class name not text", changed("class_names.0", 7), "class_names[0] must be a non-empty single-line class name"),
    ("empty class name", changed("class_names.0", ""), "class_names[0] must be a non-empty"),
    ("padded class name", changed("class_names.0", " swipe_left"), "class_names[0] must be a non-empty"),
    ("invisible character", changed("class_names.0", "\ufeffswipe_left"), "class_names[0] must be a non-empty"),
    ("class_names a string", changed("class_names", "abc"), "class_names must be a list"),
    ("unknown background class", changed("background_classes", ["idle"]), "background_classes[0] must be one of the class names, got 'idle'"),
    ("state shape zero", changed("state.1.shape", [1, 0, 20, 20]), "state state_in.1: shape[1] must be an integer from 1"),
    ("state shape negative", changed("state.1.shape", [1, -4, 20, 20]), "state state_in.1: shape[1] must be an integer from 1"),
    ("state shape float", changed("state.0.shape", [1, 2.5, 40, 40]), "state state_in.0: shape[1] must be an integer"),
    ("state too large", changed("state.0.shape", [1, 4096, 4096, 4096]), "state state_in.0: shape must be at most"),
    ("state name", changed("state.0.name", "cache"), "state name must be 'state_in.<i>', got 'cache'"),
    ("state order", changed("state.0.name", "state_in.1"), "state[0].name must be 'state_in.0'"),
    ("state dtype", changed("state.0.dtype", "int8"), "state state_in.0: dtype must be one of"),
    ("state unknown key", changed("state.0.layout", "NCHW"), "unknown field state[0].layout"),
    ("state in a window card", changed("temporal.mode", "window"), "is a window model (temporal.mode 'window') but lists 2 state tensors"),
    ("precision", changed("precision", "fp16"), "precision must be one of 'fp32', 'int8'"),
    ("calibration a list", changed("calibration", [1]), "calibration must be a JSON object"),
    ("weights_sha256", changed("weights_sha256", "xyz"), "weights_sha256 must be 64 lowercase hex digits"),
    ("unverified unknown", changed("unverified", ["colour"]), "unverified[0] must be the name of a card field"),
    ("description not text", changed("description", 5), "description must be a string"),
]


@pytest.mark.parametrize("card, fragment", [pytest.param(c, f, id=i) for i, c, f in BAD_CARDS])
def test_bad_card_file_is_refused_in_one_line(tmp_path: Path, card: dict, fragment: str) -> None:
    path = tmp_path / "m.card.json"
    path.write_text(json.dumps(card))  # json writes NaN/Infinity literals, as a careless writer would
    with pytest.raises(CardError) as info:
        ModelCard.load(path)
    message = str(info.value)
    assert fragment in message
    assert message.startswith(f"{path}: ") and "\n" not in message


def tiny_onnx_with_card(path: Path, card_json: str) -> Path:
    """The smallest valid ONNX graph (one constant output) carrying ``card_json`` as its card."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    value = helper.make_tensor("v", TensorProto.FLOAT, [1, 3], [0.0, 0.0, 0.0])
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["logits"], value=value)], "forged", [],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    model.metadata_props.add(key="streamtsm.card", value=card_json)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("card, fragment", [pytest.param(c, f, id=i) for i, c, f in BAD_CARDS])
def test_bad_card_in_onnx_metadata_is_refused_in_one_line(tmp_path: Path, card: dict, fragment: str) -> None:
    pytest.importorskip("onnxruntime")
    from streamtsm.backends.base import BackendError
    from streamtsm.backends.onnxruntime_backend import open_onnxruntime

    path = tiny_onnx_with_card(tmp_path / "forged.onnx", json.dumps(card))
    with pytest.raises(BackendError) as info:
        open_onnxruntime(path)
    message = str(info.value)
    assert fragment in message
    assert "the model card in its metadata is unusable" in message and "\n" not in message


def test_the_base_card_passes_both_ways(tmp_path: Path) -> None:
    """Guard for the table: the unchanged card loads from a file, and from ONNX metadata it gets
    past the card check to the graph I/O check (the tiny graph has no frame input)."""
    pytest.importorskip("onnxruntime")
    from streamtsm.backends.base import BackendError
    from streamtsm.backends.onnxruntime_backend import open_onnxruntime

    path = tmp_path / "m.card.json"
    path.write_text(json.dumps(base_card()))
    card = ModelCard.load(path)
    assert card.preprocessing.crop_size == 80 and card.num_classes == 3 and card.state[1].shape == (1, 4, 20, 20)
    with pytest.raises(BackendError, match="does not match its model card: missing inputs"):
        open_onnxruntime(tiny_onnx_with_card(tmp_path / "ok.onnx", json.dumps(base_card())))


def test_version_1_cards_still_load() -> None:
    """A version-1 card (no precision, calibration, weights_* or unverified) gets their defaults;
    the embedded default model's card is one."""
    card = base_card()
    for key in ("precision", "calibration", "weights_name", "weights_sha256", "unverified"):
        del card[key]
    card["card_version"] = 1
    loaded = ModelCard.from_dict(card)
    assert loaded.precision == "fp32" and loaded.unverified == () and loaded.weights_sha256 == ""
    shipped = Path(__file__).resolve().parents[1] / "streamtsm" / "assets" / "default.card.json"
    assert json.loads(shipped.read_text())["card_version"] == 1
    assert ModelCard.load(shipped).preprocessing.crop_size == 80


def test_cards_made_in_code_are_checked_too() -> None:
    """The same validator runs for ModelCard(...) and card.replace(...), not only for JSON."""
    card = ModelCard.from_dict(base_card())
    with pytest.raises(CardError, match=r"temporal.fps must be a finite number above 0"):
        card.replace(temporal=Temporal(fps=math.nan))
    with pytest.raises(CardError, match=r"class_names\[2\] must be a non-empty single-line class name"):
        card.replace(class_names=("a", "b", "c\r"), background_classes=())
    with pytest.raises(CardError, match="class_names must be a list of 1 to"):
        ModelCard(arch="tsm_mobilenetv2", arch_kwargs={}, class_names=())


def test_unknown_arch_kwargs_key_is_refused_when_the_model_is_built(tmp_path: Path) -> None:
    """What ``arch_kwargs`` may contain depends on the architecture, which only the torch model
    registry knows, so this check is made where a card is turned into a model: loading a
    safetensors checkpoint with a card naming an argument the builder does not take."""
    pytest.importorskip("torch")
    from streamtsm.checkpoints import CheckpointError, load_model, save_model
    from streamtsm.models import create_model

    weights = save_model(create_model("tsm_mobilenetv2", num_classes=3, width_mult=0.5), tmp_path / "m.safetensors")
    card_file = tmp_path / "m.card.json"
    card = json.loads(card_file.read_text())
    card["arch_kwargs"]["bogus"] = 1
    card_file.write_text(json.dumps(card))
    with pytest.raises(CheckpointError) as info:
        load_model(weights)
    message = str(info.value)
    assert "m.card.json" in message and "arch_kwargs" in message and "'bogus'" in message and "\n" not in message
