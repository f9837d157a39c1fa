"""Procedural motion gestures: training clips for the default model and a scripted live source.

The embedded default model must recognise *motion* (a swipe, a zoom, a turn), not what the
moving thing looks like. So every clip is a random textured object over a random background,
and only how the object moves tells the classes apart. The same renderer drives the
``synthetic`` camera source: a :class:`GestureScript` plays gestures at known times, which gives
end-to-end tests of the recognizer a ground-truth timeline. numpy + OpenCV only (no torch):
the live source is on the runtime path.

Beyond the default model's nine ``CLASSES``, ``EXTRA_GESTURES`` (``circle_cw``, ``circle_ccw``,
``wave``, ``push``) are motions that model never saw: the synthetic performer
(:class:`streamtsm.sources.PerformerSource`) does them on cue for ``streamtsm record``.

Held-out split: train and test share no shape or texture family (see :mod:`.shapes`,
:mod:`.textures`); evaluate with seeds you never trained on.

Modules: ``params`` (splits, checks, seeded streams), ``shapes``/``textures``/``appearance``
(what an object looks like), ``sprite`` (rasterising and drawing it), ``scene`` (background and
camera), ``motion`` (classes, motion families, tremor), ``renderer`` (episodes -> frames),
``clips`` (:func:`render_clip`, :func:`plan_clip`), ``script`` (:class:`GestureScript`), ``dataset``
(:func:`write_dataset`).
"""

from .clips import IDLE_BEHAVIOURS, ClipPlan, ClipTruth, plan_clip, render_clip
from .dataset import write_dataset
from .motion import CLASSES, EXTRA_GESTURES, GESTURE_SECONDS, GESTURES, MOTION_FAMILIES, gesture_seconds
from .params import SyntheticError
from .script import GestureEvent, GestureScript
from .shapes import SHAPE_FAMILIES
from .textures import TEXTURE_FAMILIES

__all__ = [
    "CLASSES",
    "EXTRA_GESTURES",
    "GESTURES",
    "GESTURE_SECONDS",
    "IDLE_BEHAVIOURS",
    "MOTION_FAMILIES",
    "SHAPE_FAMILIES",
    "TEXTURE_FAMILIES",
    "ClipPlan",
    "ClipTruth",
    "GestureEvent",
    "GestureScript",
    "SyntheticError",
    "gesture_seconds",
    "plan_clip",
    "render_clip",
    "write_dataset",
]
