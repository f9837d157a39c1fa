"""`streamtsm record` end to end: the synthetic performer, real MP4 files decoded again, redo and
quit on a real subprocess's stdin, sources that die, appending, and arguments refused up front."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import select
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from procs import LineReader, finish
from streamtsm.cli import main
from streamtsm.recording import (
    ClassNameError,
    Command,
    FolderError,
    Plan,
    RecordingFolder,
    RecordingSession,
    Status,
    Stopped,
    parse_class_list,
)
from streamtsm.recording.folder import merge_classes
from streamtsm.sources import CaptureThread, PerformerSource, SourceError, open_source
from streamtsm.synthetic import EXTRA_GESTURES, gesture_seconds, render_clip

pytestmark = pytest.mark.runtime  # torch-free: part of the run with torch blocked

REPO = Path(__file__).resolve().parents[1]
FAST = ["--source", "synthetic:performer", "--countdown", "0", "--headless", "--frame-size", "64x48"]
# The command as a robot runs it: another process, torch made unimportable.
_NO_TORCH = "import sys; sys.modules['torch'] = None; from streamtsm.cli import main; sys.exit(main(sys.argv[1:]))"


def record(capsys, out: Path, *args: str) -> tuple[int, list[dict]]:
    code = main(["record", str(out), *args])
    lines = capsys.readouterr().out.splitlines()
    return code, [json.loads(line) for line in lines if line.strip()]


def spawn(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", _NO_TORCH, "record", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)


def decode(path: Path) -> tuple[np.ndarray, float]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return np.stack(frames), fps


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def annotations(out: Path) -> list[tuple[str, int]]:
    return [(p, int(i)) for p, i in (ln.split(" ") for ln in (out / "annotations.txt").read_text().splitlines())]


def check_folder(out: Path) -> dict:
    """Every registered clip exists, decodes to its manifest's frames/fps/size, and nothing else is there."""
    m = manifest(out)
    classes = (out / "classes.txt").read_text().splitlines()
    assert classes == m["classes"]
    lines = annotations(out)
    assert [(c["path"], c["label"]) for c in m["clips"]] == lines
    for clip in m["clips"]:
        frames, fps = decode(out / clip["path"])
        assert len(frames) == clip["frames"] and frames.shape[1:3] == tuple(clip["size"]), clip
        assert fps == pytest.approx(clip["fps"], abs=0.01) and clip["label"] == classes.index(clip["class"])
        assert clip["path"].startswith(f"{clip['class']}/")
    on_disk = sorted(str(p.relative_to(out)) for p in out.glob("*/*.mp4"))
    assert on_disk == sorted(p for p, _ in lines)  # no half clip lying around, none unregistered
    assert not list((out / ".incomplete").glob("*")) if (out / ".incomplete").exists() else True
    return m


# ------------------------------------------------------------------------------ the performer


def test_the_performer_does_the_gesture_on_cue_from_another_thread():
    source = PerformerSource(seed=3, size=(48, 64), realtime=False)
    with CaptureThread(source, latest_only=False, queue_size=16) as capture:
        before = [capture.get(timeout=10) for _ in range(20)]
        assert {f.label for f in before} == {"no_motion"}  # idle until told
        for gesture in EXTRA_GESTURES:
            start = source.perform(gesture, within_s=2.0)  # the capture thread keeps reading meanwhile
            frames = []
            while len(frames) < 60:
                frame = capture.get(timeout=10)
                if frame.index >= start:
                    frames.append(frame)
            labels = [f.label for f in frames]
            first, last = labels.index(gesture), len(labels) - labels[::-1].index(gesture)
            assert set(labels[first:last]) == {gesture}  # one gesture, once
            assert 0.1 * 30 - 1 <= first <= 0.3 * 30 + 1  # after a reaction time
            assert 60 - last >= 0.15 * 30 - 1  # ends before the take does
            assert gesture_seconds(gesture)[0] * 30 - 1 <= last - first <= gesture_seconds(gesture)[1] * 30 + 1
            # A new scene for each take: the cut's frame differs from the frame before it.
            assert frames[0].index == start
    assert source.takes == len(EXTRA_GESTURES)


def test_the_performer_is_reproducible_and_its_test_split_differs():
    def take(split: str, seed: int) -> np.ndarray:
        with PerformerSource(seed=seed, size=(48, 64), realtime=False, split=split) as source:
            source.read()
            start = source.perform("wave", within_s=2.0)
            return np.stack([source.read().image for _ in range(40)]), start

    a, start_a = take("train", 1)
    b, start_b = take("train", 1)
    np.testing.assert_array_equal(a, b)
    assert start_a == start_b == 1
    assert np.abs(a.astype(int) - take("test", 1)[0].astype(int)).mean() > 5
    assert np.abs(a.astype(int) - take("train", 2)[0].astype(int)).mean() > 5


def test_the_synthetic_source_scripts_the_extra_gestures_for_detection_tests():
    source = open_source("synthetic:5", labels=EXTRA_GESTURES, duration_s=20.0, size=(48, 64), realtime=False)
    assert {e.label for e in source.script.timeline} == set(EXTRA_GESTURES)
    seen = {frame.label for frame in source}
    assert seen == {*EXTRA_GESTURES, "no_motion"}


def test_the_performer_refuses_what_it_cannot_do():
    source = PerformerSource(size=(48, 64), realtime=False)
    with pytest.raises(SourceError, match="not open"):
        source.perform("wave")
    source.open()
    with pytest.raises(SourceError, match="cannot perform 'moonwalk'"):
        source.perform("moonwalk")
    with pytest.raises(SourceError, match="too short for wave"):
        source.perform("wave", within_s=1.0)
    assert PerformerSource.min_take_seconds("wave") == pytest.approx(0.3 + 1.0 + 0.15)
    with pytest.raises(SourceError, match="synthetic:performer\\[:train\\|test\\]"):
        open_source("synthetic:performer:val")
    assert open_source("synthetic:performer:test:7", realtime=False).name == "synthetic:performer:test:7"


# ------------------------------------------------------------------------------ sessions


def test_twenty_takes_of_five_classes_decode_as_the_manifest_says_and_load_for_training(tmp_path, capsys):
    from streamtsm.train.datasets import load_video_dataset, read_annotation_list
    from streamtsm.train.sampling import SampleFrames

    out = tmp_path / "gestures"
    code, events = record(capsys, out, "--classes", ",".join(EXTRA_GESTURES), "--takes", "20", "--seconds", "1.5",
                          "--between", "0.5", *FAST)
    assert code == 0
    summary = events[-1]
    assert summary["type"] == "summary" and summary["stopped"] == "done" and summary["takes_saved"] == 80
    assert summary["saved"] == {**{g: 20 for g in EXTRA_GESTURES}, "no_action": 80}
    m = check_folder(out)
    assert m["classes"] == [*EXTRA_GESTURES, "no_action"] and m["background_class"] == "no_action"
    session = m["sessions"][0]
    assert session["source"] == "synthetic:performer:train:0" and session["fps"] == 30.0 and session["size"] == [48, 64]
    assert session["stopped"] == "done" and session["streamtsm_version"] and session["started_at"] <= session["ended_at"]
    for clip in m["clips"]:
        assert clip["fps"] == 30.0
        if clip["kind"] == "take":  # the whole gesture inside the take, rest before and after it
            assert clip["frames"] == 45
            assert [label for label, _ in clip["truth"]] == ["no_motion", clip["class"], "no_motion"], clip
        else:
            assert clip["frames"] == 15 and clip["truth"] == [["no_motion", 15]]
    # Takes go round the classes, so a session stopped early is balanced.
    assert [c["class"] for c in m["clips"] if c["kind"] == "take"][:8] == list(EXTRA_GESTURES) * 2
    # mmaction2's format, read by today's training loader.
    records, bad = read_annotation_list(out / "annotations.txt")
    assert not bad and len(records) == 160
    assert [(str(r.path.relative_to(out)), r.label) for r in records] == annotations(out)
    for source in (out / "annotations.txt", out):  # the list, or the folder (its annotations.txt wins)
        data, bad = load_video_dataset(source, sampling=SampleFrames(num_clips=4))
        assert not bad and data.class_names == (*EXTRA_GESTURES, "no_action") and len(data) == 160
        clip, label = data.load(0)
        assert clip.shape == (4, 48, 64, 3) and label == 0


def test_the_recorded_folder_fine_tunes_the_default_model_as_the_readme_says(tmp_path, capsys):
    pytest.importorskip("torch")
    from streamtsm.checkpoints import load_model

    out = tmp_path / "gestures"
    assert record(capsys, out, "--classes", "wave,push", "--takes", "2", *FAST)[0] == 0
    model = tmp_path / "my_gestures.safetensors"
    assert main(["train", str(out), "--init", "default", "--out", str(model), "--epochs", "1", "--batch-size", "4",
                 "--threads", "1", "--no-progress"]) == 0
    card = load_model(model).card
    assert card.class_names == ("wave", "push", "no_action") and card.background_classes == ("no_action",)


def test_recording_again_appends_with_stable_labels(tmp_path, capsys):
    out = tmp_path / "gestures"
    assert record(capsys, out, "--classes", "wave,circle_cw", "--takes", "2", *FAST)[0] == 0
    first = manifest(out)
    code, events = record(capsys, out, "--classes", "circle_cw,push", "--takes", "2", *FAST)
    assert code == 0 and events[0]["appending"] and events[0]["new_classes"] == ["push"]
    m = check_folder(out)
    assert m["classes"] == ["wave", "circle_cw", "no_action", "push"]  # old indices kept, new class after them
    assert m["clips"][: len(first["clips"])] == first["clips"]
    assert [c["path"] for c in m["clips"] if c["class"] == "circle_cw"] == [f"circle_cw/000{i}.mp4" for i in (1, 2, 3, 4)]
    assert len([c for c in m["clips"] if c["class"] == "no_action"]) == 8
    assert len(m["sessions"]) == 2 and {c["session"] for c in m["clips"]} == {0, 1}
    # An order that would renumber the existing labels is refused, and the folder is left as it was.
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["record", str(out), "--classes", "circle_cw,wave", *FAST]) == 1
    assert "would renumber this folder's labels (wave=0, circle_cw=1, no_action=2, push=3)" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_an_appended_performer_session_records_new_takes(tmp_path, capsys):
    # every session used to start at take 1 (seed 0): push/0003 was push/0001 frame for frame
    out = tmp_path / "gestures"
    for _ in range(2):
        assert record(capsys, out, "--classes", "push", "--between", "0", "--takes", "2", *FAST)[0] == 0
    m = check_folder(out)
    clips = {c["path"]: decode(out / c["path"])[0] for c in m["clips"]}
    assert sorted(clips) == [f"push/000{i}.mp4" for i in (1, 2, 3, 4)]
    digests = {path: hashlib.md5(frames.tobytes()).hexdigest() for path, frames in clips.items()}
    assert len(set(digests.values())) == 4, digests
    assert [(s["settings"]["performer_first_take"], s["performer_last_take"]) for s in m["sessions"]] == [(1, 2), (3, 4)]
    # the first session is what a one-session recording gives (take numbering starts at 1 as before)
    alone = tmp_path / "alone"
    assert record(capsys, alone, "--classes", "push", "--between", "0", "--takes", "2", *FAST)[0] == 0
    assert [hashlib.md5(decode(alone / f"push/000{i}.mp4")[0].tobytes()).hexdigest() for i in (1, 2)] == \
        [digests["push/0001.mp4"], digests["push/0002.mp4"]]


NEXT_TAKE_CASES = {
    "a new folder": ([], [], 1),
    "sessions that recorded their last take": ([{"performer_last_take": 2}, {"performer_last_take": 7}], ["take"] * 4, 8),
    "redone takes count (cued, not kept)": ([{"performer_last_take": 5}], ["take"] * 3 + ["between"] * 3, 6),
    "an older folder: its takes": ([{}, {}], ["take", "between", "take", "take"], 4),
}


@pytest.mark.parametrize("sessions, kinds, expected", NEXT_TAKE_CASES.values(), ids=NEXT_TAKE_CASES.keys())
def test_the_next_performer_take_follows_every_earlier_session(sessions, kinds, expected):
    from streamtsm.commands.record import next_performer_take
    from streamtsm.recording.folder import FolderState

    state = FolderState(["push", "no_action"], "no_action", sessions, [{"kind": k} for k in kinds])
    assert next_performer_take(state) == expected


def test_the_performer_continues_from_its_first_take():
    def take_frames(source: PerformerSource) -> np.ndarray:
        source.open()
        try:
            start = source.perform("push", within_s=2.0)
            frames = []
            while len(frames) < 20:
                frame = source.read()
                if frame.index >= start:
                    frames.append(frame.image)
            return np.stack(frames)
        finally:
            source.close()

    def performer(**kw) -> PerformerSource:
        return PerformerSource(size=(48, 64), realtime=False, **kw)

    first, second = take_frames(performer()), performer()
    second.takes = 2  # cue number 3 of an earlier source
    assert np.array_equal(take_frames(performer(first_take=3)), take_frames(second))
    assert not np.array_equal(take_frames(performer(first_take=3)), first)
    with pytest.raises(SourceError, match="first_take must be a whole number from 1, got 0"):
        performer(first_take=0)


def _stdin_session(tmp_path: Path, command: str, *extra: str) -> tuple[list[dict], Path, subprocess.Popen]:
    """A long unpaced session; ``command`` is sent once the first take is saved, then q once it took effect."""
    out = tmp_path / "gestures"
    proc = spawn(str(out), "--classes", "wave,push", "--takes", "200", *FAST, *extra)
    reader = LineReader(proc.stdout)
    events: list[dict] = []
    sent = False
    try:
        while True:
            line = reader.readline(timeout=60)
            if not line:
                break
            events.append(json.loads(line))
            kind = events[-1]["type"]
            if kind == "saved" and not sent:
                proc.stdin.write(command)
                proc.stdin.flush()
                sent = True
            elif kind == "redo":
                proc.stdin.write("q\n")
                proc.stdin.flush()
        finish(proc, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return events, out, proc


@pytest.mark.parametrize("command", ["redo\n", " \n"])  # the word, or the space key's line
def test_redo_on_stdin_discards_the_last_take_and_records_it_again(tmp_path, command):
    events, out, proc = _stdin_session(tmp_path, command)
    assert proc.returncode == 0, proc.stderr.read()
    redos = [e for e in events if e["type"] == "redo"]
    assert len(redos) == 1
    redo = redos[0]
    m = check_folder(out)
    kept = {c["path"] for c in m["clips"]}
    for path in redo["discarded"]:  # gone from disk, the list and the manifest
        assert path not in kept and not (out / path).exists()
    # The redone take was prompted again after the redo (and recorded, unless q came first).
    after = events[events.index(redo) + 1:]
    assert {"type": "prompt", "class": redo["class"], "take": redo["take"], "takes": 200,
            "text": f"do: {redo['class']}"} in after
    summary = events[-1]
    assert summary["stopped"] == "quit" and summary["takes_saved"] == len([c for c in m["clips"] if c["kind"] == "take"])
    takes = [(c["class"], c["take"]) for c in m["clips"] if c["kind"] == "take"]
    assert len(takes) == len(set(takes))  # each take once: the discarded one was replaced, not duplicated


def test_quit_on_stdin_stops_and_keeps_every_completed_clip(tmp_path):
    events, out, proc = _stdin_session(tmp_path, "q\n")
    assert proc.returncode == 0, proc.stderr.read()
    summary = events[-1]
    assert summary["type"] == "summary" and summary["stopped"] == "quit"
    m = check_folder(out)  # the clip in progress was dropped: every file on disk is complete and registered
    saved = [e for e in events if e["type"] == "saved"]
    assert [e["path"] for e in saved] == [c["path"] for c in m["clips"]] and len(saved) >= 1
    assert 1 <= summary["takes_saved"] < 400 and m["sessions"][0]["stopped"] == "quit"


def test_unknown_stdin_commands_are_reported_and_ignored(tmp_path):
    events, out, proc = _stdin_session(tmp_path, "jump\nq\n")
    assert proc.returncode == 0
    assert {"type": "warning", "message": "unknown command 'jump': send 'redo' (or a space) or 'q'"} in events
    assert events[-1]["stopped"] == "quit"


def test_a_reader_that_goes_away_ends_the_session_quietly(tmp_path):
    out = tmp_path / "gestures"
    proc = spawn(str(out), "--classes", "wave", "--takes", "200", *FAST)  # as in: streamtsm record ... | head -3
    try:
        for _ in range(3):  # (select: a read with a deadline; the child writes a line per event)
            assert select.select([proc.stdout], [], [], 60)[0], "no output within 60 s"
            assert proc.stdout.readline()
        proc.stdout.close()
        finish(proc, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert proc.returncode == 0 and "Traceback" not in err and "BrokenPipe" not in err, err
    assert manifest(out)["sessions"][0]["stopped"] == "quit"
    check_folder(out)


def test_a_crash_never_leaves_a_half_clip_registered(tmp_path):
    out = tmp_path / "gestures"
    proc = spawn(str(out), "--classes", "wave,push", "--takes", "200", *FAST)
    reader = LineReader(proc.stdout)
    try:
        saved = 0
        while saved < 3:
            saved += json.loads(reader.readline(timeout=60))["type"] == "saved"
        proc.kill()  # SIGKILL: no cleanup at all, in the middle of writing a clip
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    m = manifest(out)
    assert len(m["clips"]) >= 3
    for path, _ in annotations(out):  # every registered clip is complete
        clip = next(c for c in m["clips"] if c["path"] == path)
        assert len(decode(out / path)[0]) == clip["frames"]
    # The next session takes over the folder (the dead one's lock is gone) and clears its leftovers.
    proc = spawn(str(out), "--classes", "wave,push", "--takes", "1", *FAST)
    proc.stdin.close()
    LineReader(proc.stdout).rest(timeout=60)
    finish(proc, timeout=60)
    assert proc.returncode == 0, proc.stderr.read()
    check_folder(out)


def test_a_file_that_ends_mid_take_keeps_the_takes_before_it(tmp_path):
    video = tmp_path / "short.mp4"
    frames = render_clip("swipe_left", 1, size=(48, 64), duration_s=1.0, lead_in_s=1.5, lead_out_s=1.0)  # 105 frames
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 48))
    for frame in frames:
        writer.write(frame)
    writer.release()
    out = tmp_path / "gestures"
    proc = spawn(str(out), "--classes", "wave", "--source", str(video), "--countdown", "0", "--headless")
    reader = LineReader(proc.stdout)
    events = [json.loads(line) for line in reader.rest(timeout=60).splitlines()]
    finish(proc, timeout=60)
    err = proc.stderr.read()
    assert proc.returncode == 1
    assert "ended during the session; kept the 1 takes recorded before it" in err and "Traceback" not in err
    assert events[-1]["stopped"] == "source_ended" and events[-1]["takes_saved"] == 1
    m = check_folder(out)
    assert [c["path"] for c in m["clips"]] == ["wave/0001.mp4", "no_action/0001.mp4"]
    assert m["sessions"][0]["stopped"] == "source_ended"
    # Frames are written as captured: the take is the file's frames 2..61 (0 and 1 measured the rate); lossy codec.
    assert np.abs(decode(out / "wave/0001.mp4")[0].astype(int) - frames[2:62].astype(int)).mean() < 6


class _FailingPerformer(PerformerSource):
    """A performer whose 'camera' fails after ``fail_at`` frames (as an unplugged USB camera does)."""

    def __init__(self, fail_at: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fail_at = fail_at

    def _read(self):
        if self._i >= self.fail_at:
            raise SourceError("camera unplugged")
        return super()._read()


class _Events:
    def __init__(self) -> None:
        self.events: list[dict] = []
        self.statuses: list[Status] = []

    def event(self, event: dict) -> None:
        self.events.append(event)

    def frame(self, frame, status: Status) -> None:
        self.statuses.append(status)


def _session(out: Path, source, plan: Plan, **options) -> tuple[object, _Events, RecordingFolder]:
    folder = RecordingFolder.inspect(out, plan.classes, plan.background)
    folder.open_for_writing()
    listener = _Events()
    try:
        with CaptureThread(source, latest_only=False) as capture:
            result = RecordingSession(folder, plan, capture.get, listener=listener, performer=source,
                                      source_name=source.name, live=False, **options).run()
    finally:
        folder.close()
    return result, listener, folder


def test_a_source_that_fails_mid_take_keeps_the_takes_before_it(tmp_path):
    out = tmp_path / "gestures"
    source = _FailingPerformer(fail_at=250, size=(48, 64), realtime=False)  # dies during the third take
    result, listener, _ = _session(out, source, Plan(("wave", "push"), takes=3, seconds=2.0, countdown=0))
    assert result.stopped is Stopped.SOURCE_FAILED and "camera unplugged" in result.message
    assert result.takes_saved == 2
    m = check_folder(out)
    assert [c["path"] for c in m["clips"]] == ["wave/0001.mp4", "no_action/0001.mp4", "push/0001.mp4",
                                               "no_action/0002.mp4"]
    assert m["sessions"][0]["stopped"] == "source_failed"


def test_a_clip_that_cannot_be_saved_stops_the_session_and_keeps_the_rest(tmp_path):
    out = tmp_path / "gestures"

    class BreakPushFolder(_Events):  # after the first take, push's folder becomes a file (as a full disk would fail)
        def event(self, event):
            super().event(event)
            if event["type"] == "saved" and event["class"] == "wave" and (out / "push").is_dir():
                (out / "push").rmdir()
                (out / "push").write_text("in the way")

    plan = Plan(("wave", "push"), takes=2, seconds=1.5, countdown=0, between=0.5)
    folder = RecordingFolder.inspect(out, plan.classes, plan.background)
    folder.open_for_writing()
    listener = BreakPushFolder()
    source = PerformerSource(size=(48, 64), realtime=False)
    try:
        with CaptureThread(source, latest_only=False) as capture:
            result = RecordingSession(folder, plan, capture.get, listener=listener, performer=source, live=False).run()
    finally:
        folder.close()
    assert result.stopped is Stopped.WRITE_FAILED and "could not save take 1 of push" in result.message
    (out / "push").unlink()
    m = check_folder(out)
    assert [c["path"] for c in m["clips"]] == ["wave/0001.mp4", "no_action/0001.mp4"]
    assert m["sessions"][0]["stopped"] == "write_failed"


def test_countdown_and_phases_in_order_on_the_source_clock(tmp_path):
    out = tmp_path / "gestures"
    source = PerformerSource(size=(48, 64), realtime=False)
    result, listener, _ = _session(out, source, Plan(("wave",), takes=1, seconds=1.5, countdown=2, between=0.5))
    assert result.stopped is Stopped.DONE
    kinds = [e["type"] for e in listener.events]
    assert kinds == ["ready", "prompt", "countdown", "countdown", "recording", "saved", "saved"], kinds
    assert [e["seconds_left"] for e in listener.events if e["type"] == "countdown"] == [2, 1]
    phases = [s.phase for s in listener.statuses]
    assert phases.count("countdown") == 60 and phases.count("between") == 15
    assert phases.index("countdown") < phases.index("recording") < phases.index("between")
    progress = [s.progress for s in listener.statuses if s.phase == "recording"]
    assert progress[-1] == pytest.approx(44 / 45) and progress == sorted(progress)


def test_redo_during_the_countdown_redoes_the_previous_take(tmp_path):
    out = tmp_path / "gestures"
    source = PerformerSource(size=(48, 64), realtime=False)
    plan = Plan(("wave", "push"), takes=1, seconds=1.5, countdown=1, between=0.5)
    commands: "queue.Queue[Command]" = queue.Queue()

    class PressSpaceOnce(_Events):  # the user presses space during push's countdown, once
        def frame(self, frame, status):
            super().frame(frame, status)
            if status.phase == "countdown" and status.class_name == "push" and not self.pressed:
                self.pressed = True
                commands.put(Command.REDO)

    listener = PressSpaceOnce()
    listener.pressed = False
    folder = RecordingFolder.inspect(out, plan.classes, plan.background)
    folder.open_for_writing()
    try:
        with CaptureThread(source, latest_only=False) as capture:
            result = RecordingSession(folder, plan, capture.get, listener=listener, commands=commands,
                                      performer=source, live=False).run()
    finally:
        folder.close()
    assert result.stopped is Stopped.DONE
    redo = next(e for e in listener.events if e["type"] == "redo")
    assert redo["class"] == "wave" and redo["discarded"] == ["wave/0001.mp4", "no_action/0001.mp4"]
    m = check_folder(out)
    assert [c["class"] for c in m["clips"]] == ["wave", "no_action", "push", "no_action"]
    assert [e["class"] for e in listener.events if e["type"] == "prompt"] == ["wave", "push", "wave", "push"]


# ------------------------------------------------------------------------------ refusals


def _not_created(out: Path) -> None:
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--classes", "wave,../escape"], "'../escape' cannot be a folder name"),
    (["--classes", "wave,/etc"], "'/etc' cannot be a folder name"),
    (["--classes", ".hidden"], "'.hidden' cannot be a folder name"),
    (["--classes", "wave,,push"], "name 2 is empty"),
    (["--classes", ""], "--classes is empty"),
    (["--classes", "wave\npush"], "cannot be a folder name"),
    (["--classes", "wave,wave"], "'wave' twice"),
    (["--classes", "wave,Wave"], "the same folder on macOS/Windows"),
    (["--classes", "wave,no_action"], "the background class: leave it out"),
    (["--classes", "wave", "--background", "../up"], "--background '../up' cannot be a folder name"),
    (["--classes", "con"], "'con' cannot be a folder name"),
    (["--classes", "wave", "--takes", "0"], "--takes 0 is out of range"),
    (["--classes", "wave", "--seconds", "0.1"], "--seconds 0.1 is out of range"),
    (["--classes", "wave", "--countdown", "-1"], "--countdown -1 is out of range"),
    (["--classes", "wave", "--between", "99"], "--between 99 is out of range"),
    (["--classes", "wave", "--fps", "0"], "--fps 0 is out of range"),
    (["--classes", "wave", "--frame-size", "640"], "--frame-size '640': give WIDTHxHEIGHT"),
    (["--classes", "wave", "--seconds", "1"], "too short for the synthetic performer's wave: use --seconds 1.45"),
    (["--classes", "moonwalk"], "the synthetic performer cannot perform moonwalk"),
    (["--classes", "wave", "--source", "synthetic:performer:val"], "is not 'synthetic:performer[:train|test][:SEED]'"),
    (["--classes", "wave", "--source", "missing.mp4"], "video file 'missing.mp4' does not exist"),
    (["--classes", "wave", "--camera", "5"], "could not open camera index 5"),
])
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, capsys, args, message):
    out = tmp_path / "gestures"
    argv = ["record", str(out), "--source", "synthetic:performer", "--headless", "--countdown", "0", *args]
    if "--camera" in args:
        argv.remove("--source")
        argv.remove("synthetic:performer")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert err.count("\n") == 1  # one line
    _not_created(out)


def test_folders_that_are_not_recordings_are_refused(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert main(["record", str(a_file), "--classes", "wave", *FAST]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"\xff\xd8")
    assert main(["record", str(other), "--classes", "wave", *FAST]) == 1
    assert "is not empty (cat.jpg) and is not a recording" in capsys.readouterr().err
    assert sorted(p.name for p in other.iterdir()) == ["cat.jpg"]
    out = tmp_path / "gestures"
    assert record(capsys, out, "--classes", "wave", "--takes", "1", *FAST)[0] == 0
    (out / "manifest.json").write_text("{not json")
    assert main(["record", str(out), "--classes", "wave", *FAST]) == 1
    assert "manifest.json cannot be read" in capsys.readouterr().err
    assert (out / "manifest.json").read_text() == "{not json"  # never overwritten


def test_a_second_session_on_the_same_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "gestures"
    busy = RecordingFolder.inspect(out, ("wave",), "no_action")
    busy.open_for_writing()
    try:
        assert main(["record", str(out), "--classes", "wave", *FAST]) == 1
        assert "another `streamtsm record` is writing to" in capsys.readouterr().err
    finally:
        busy.close()


@pytest.mark.parametrize("existing, background_now, classes, background, expected", [
    ([], None, ("a", "b"), "bg", (["a", "b", "bg"], "bg", ("a", "b", "bg"))),
    (["a", "b", "bg"], "bg", ("a", "b"), "bg", (["a", "b", "bg"], "bg", ())),
    (["a", "b", "bg"], "bg", ("b",), "bg", (["a", "b", "bg"], "bg", ())),
    (["a", "b", "bg"], "bg", ("a", "c"), "bg", (["a", "b", "bg", "c"], "bg", ("c",))),
    (["a", "b", "bg"], "bg", ("c",), None, (["a", "b", "bg", "c"], "bg", ("c",))),
    (["a", "b"], None, ("b",), "bg", (["a", "b", "bg"], "bg", ("bg",))),
    (["a", "b", "bg"], "bg", ("b", "a"), "bg", "would renumber"),
    (["a", "b", "bg"], "bg", ("c", "a"), "bg", "new classes go after the existing ones"),
    (["a", "b", "bg"], "bg", ("a",), "rest", "pass --background bg"),
    (["a", "b"], None, ("a",), "b", "is a gesture class of this folder"),
])
def test_class_merging_keeps_every_existing_label(existing, background_now, classes, background, expected):
    if isinstance(expected, str):
        with pytest.raises(FolderError, match=expected):
            merge_classes(existing, background_now, classes, background)
    else:
        assert merge_classes(existing, background_now, classes, background) == expected


def test_class_lists_parse_and_check_names():
    assert parse_class_list(" wave, circle_cw ,Daumen-hoch,ziffer9") == ("wave", "circle_cw", "Daumen-hoch", "ziffer9")
    assert parse_class_list("über") == ("über",)
    for bad in ("a b", "a/b", "a\\b", "a:b", "..", "_x", "-x", "x" * 65, "nul", "a.b"):
        with pytest.raises(ClassNameError):
            parse_class_list(bad)


@pytest.mark.parametrize("line, command", [
    ("redo\n", Command.REDO), ("space\n", Command.REDO), (" \n", Command.REDO), ("R\r\n", Command.REDO),
    ("q\n", Command.QUIT), ("QUIT\n", Command.QUIT), ("\n", None),
])
def test_stdin_commands(line, command):
    from streamtsm.commands.record import parse_command

    assert parse_command(line) is command


def test_the_window_overlay_shows_the_prompt_countdown_and_rec_mark():
    from streamtsm.render import render_record_overlay

    frame = render_clip("wave", 1, size=(240, 320))[0]

    def red(img: np.ndarray) -> int:  # pixels of the REC mark's red
        b, g, r = (img[..., i].astype(int) for i in range(3))
        return int(((r > 200) & (g < 80) & (b < 80)).sum())

    countdown = render_record_overlay(frame, Status("countdown", "wave", 1, 20, 0, 40, seconds_left=2.5))
    recording = render_record_overlay(frame, Status("recording", "wave", 1, 20, 0, 40, progress=0.5))
    resting = render_record_overlay(frame, Status("between", "wave", 1, 20, 0, 40, progress=0.5), background="no_action")
    assert countdown.shape == (480, 640, 3) and frame.shape == (240, 320, 3)  # scaled for reading; clips untouched
    assert red(countdown) < 20 and red(resting) < 20 and red(recording) > 300
    centre = (slice(180, 300), slice(260, 380))
    assert (countdown[centre] > 245).all(-1).sum() > 200  # the big white "3"
    assert (recording[centre] > 245).all(-1).sum() < (countdown[centre] > 245).all(-1).sum() / 4
    assert not np.array_equal(recording, resting)


def test_record_never_imports_torch(tmp_path):
    out = tmp_path / "gestures"
    code = ("import sys; sys.modules['torch'] = None\n"
            "from streamtsm.cli import main\n"
            f"assert main(['record', {str(out)!r}, '--classes', 'wave', '--takes', '1', *{FAST!r}]) == 0\n"
            "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules if sys.modules[m] is not None)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    check_folder(out)


def test_signal_stops_the_session_and_keeps_the_takes(tmp_path):
    import signal

    out = tmp_path / "gestures"
    proc = spawn(str(out), "--classes", "wave", "--takes", "200", *FAST)
    reader = LineReader(proc.stdout)
    try:
        while json.loads(reader.readline(timeout=60))["type"] != "saved":
            pass
        proc.send_signal(signal.SIGTERM)
        lines = [json.loads(line) for line in reader.rest(timeout=60).splitlines()]
        finish(proc, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert lines[-1]["stopped"] == "signal"
    check_folder(out)
