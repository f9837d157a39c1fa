"""Recording your own gestures: a guided session that writes a training folder (numpy + OpenCV only).

``streamtsm record OUT_DIR --classes wave,circle_cw`` runs it from the command line; a robot can
use it directly: check the classes (:mod:`.names`), inspect and open the folder
(:class:`RecordingFolder`), and run a :class:`RecordingSession` on a capture thread's frames.
Modules: ``names`` (class names that are safe folder names), ``folder`` (the folder on disk,
atomic commits, appending), ``clip`` (one MP4 at the measured rate), ``session`` (prompt,
countdown, take, rest clip, redo and quit).
"""

from .clip import ClipError, ClipWriter, measured_fps
from .folder import ANNOTATIONS, CLASSES_FILE, MANIFEST, FolderError, RecordingFolder
from .names import ClassNameError, check_class_name, parse_class_list
from .session import Command, Plan, RecordingSession, SessionResult, Status, Stopped

__all__ = [
    "ANNOTATIONS",
    "CLASSES_FILE",
    "MANIFEST",
    "ClassNameError",
    "ClipError",
    "ClipWriter",
    "Command",
    "FolderError",
    "Plan",
    "measured_fps",
    "RecordingFolder",
    "RecordingSession",
    "SessionResult",
    "Status",
    "Stopped",
    "check_class_name",
    "parse_class_list",
]
