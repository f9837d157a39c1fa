"""Triton python-backend model for a streamtsm online ONNX graph (copied as ``VERSION/model.py``).

For CPU servers: Triton's ONNX Runtime backend keeps implicit state on GPU servers, while this
model keeps each sequence's shift state itself, keyed by correlation id. Triton passes the
sequence controls as inputs (``START``, ``END``, ``CORRID``; see the generated config):

* ``START``: the sequence (a camera) begins, or begins again: its state becomes zeros;
* ``END``: the state is dropped after this frame;
* an id silent for longer than the batcher's ``max_sequence_idle_microseconds`` is dropped
  here too, because Triton releases its own slot after that time without telling the model.

All requests of one ``execute`` call run as one ONNX Runtime batch when the graph has a
dynamic batch dimension (``streamtsm export --dynamic-batch``), otherwise one by one.

This file runs inside the Triton server's own interpreter, so it imports only numpy,
onnxruntime and the ``triton_python_backend_utils`` module the server provides (never
streamtsm). It is never imported by streamtsm itself; imported anywhere else, only the Triton entry
point refuses to run.
"""

import json
import os
import time

import numpy as np
import onnxruntime as ort
try:  # provided by the Triton server; absent elsewhere (the sequence logic below still imports for tests/tools)
    import triton_python_backend_utils as pb_utils
except ImportError:
    pb_utils = None


def _is_dynamic(shape):
    return not isinstance(shape[0], int)


class SequenceStates:
    """The shift state of every live sequence, by correlation id, with idle eviction.

    ``zero_state()`` gives one sequence's initial state (batch 1 per tensor). ``clock`` is
    injectable so that eviction can be checked without waiting.
    """

    def __init__(self, zero_state, idle_s, clock=time.monotonic):
        self._zero_state = zero_state
        self.idle_s = float(idle_s)
        self._clock = clock
        self._states = {}
        self._last_seen = {}

    def __len__(self):
        return len(self._states)

    def get(self, corrid, start):
        """The state to step from; a new zero state on START. None: unknown id without START."""
        if start:
            return self._zero_state()
        return self._states.get(corrid)

    def put(self, corrid, state, end):
        if end:
            self._states.pop(corrid, None)
            self._last_seen.pop(corrid, None)
        else:
            self._states[corrid] = state
            self._last_seen[corrid] = self._clock()

    def evict_idle(self):
        """Drop sequences not seen within the idle time; returns how many were dropped."""
        cutoff = self._clock() - self.idle_s
        stale = [c for c, t in self._last_seen.items() if t < cutoff]
        for corrid in stale:
            del self._states[corrid]
            del self._last_seen[corrid]
        return len(stale)


class OnnxStepper:
    """One ONNX Runtime session of the per-frame graph: ``frame`` + ``state_in.i`` -> ``logits`` + ``state_out.i``."""

    def __init__(self, path, threads):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.state_names = sorted((n for n in inputs if n.startswith("state_in.")), key=lambda n: int(n.split(".")[1]))
        self.output_names = ["logits"] + ["state_out." + n.split(".", 1)[1] for n in self.state_names]
        self.dynamic = _is_dynamic(inputs["frame"].shape)
        self._state_shapes = [tuple(inputs[n].shape[1:]) for n in self.state_names]

    def zero_state(self):
        return [np.zeros((1, *shape), dtype=np.float32) for shape in self._state_shapes]

    def run(self, frames, states):
        """frames (N, 3, H, W), states: N per-sequence lists -> (logits (N, K), N new state lists)."""
        if self.dynamic:
            return self._run(frames, [np.concatenate(column) for column in zip(*states)], len(states))
        logits, new_states = [], []
        for k, state in enumerate(states):
            out, new = self._run(frames[k : k + 1], state, 1)
            logits.append(out)
            new_states.extend(new)
        return np.concatenate(logits), new_states

    def _run(self, frames, state_columns, n):
        feeds = {"frame": frames}
        feeds.update(zip(self.state_names, state_columns))
        logits, *outs = self.session.run(self.output_names, feeds)
        return logits, [[out[k : k + 1] for out in outs] for k in range(n)]


def _flag(request, name):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return bool(tensor.as_numpy().reshape(-1)[0])


class TritonPythonModel:
    """What Triton's python backend calls: ``initialize``, ``execute`` (a list of requests), ``finalize``."""

    def initialize(self, args):
        if pb_utils is None:
            raise RuntimeError("this model runs inside Triton's python backend (triton_python_backend_utils is missing): "
                               "serve its repository with tritonserver, see `streamtsm triton-setup`")
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.stepper = OnnxStepper(path, int(params.get("intra_op_num_threads", "1")))
        idle_us = int(config["sequence_batching"].get("max_sequence_idle_microseconds", 1_000_000))
        self.states = SequenceStates(self.stepper.zero_state, idle_us / 1e6)
        self.logger = pb_utils.Logger

    def execute(self, requests):
        responses = [None] * len(requests)
        runnable = []  # (request index, corrid, end, state, frame)
        for k, request in enumerate(requests):
            corrid = int(pb_utils.get_input_tensor_by_name(request, "CORRID").as_numpy().reshape(-1)[0])
            start, end = _flag(request, "START"), _flag(request, "END")
            state = self.states.get(corrid, start)
            if state is None:
                responses[k] = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(
                        f"sequence {corrid}: no state (ended, or idle longer than "
                        f"{self.states.idle_s:g} s); start it again with the START flag"
                    )
                )
                continue
            frame = pb_utils.get_input_tensor_by_name(request, "frame").as_numpy()
            runnable.append((k, corrid, end, state, frame.astype(np.float32, copy=False)))
        if runnable:
            frames = np.concatenate([item[4] for item in runnable])
            logits, new_states = self.stepper.run(frames, [item[3] for item in runnable])
            for row, (k, corrid, end, _, _) in enumerate(runnable):
                self.states.put(corrid, new_states[row], end)
                responses[k] = pb_utils.InferenceResponse([pb_utils.Tensor("logits", logits[row : row + 1])])
        evicted = self.states.evict_idle()
        if evicted:
            self.logger.log_info(f"evicted {evicted} idle sequence(s); {len(self.states)} live")
        return responses

    def finalize(self):
        self.states = None
        self.stepper = None
