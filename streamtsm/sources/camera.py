"""A local camera by index (``cv2.VideoCapture(index)``; V4L2 on Linux).

The index is checked before OpenCV sees it: OpenCV 5 crashes the process (segmentation fault)
on a negative index, and reads an index of 100 or more as ``backend * 100 + camera`` (200 is
V4L2 camera 0), so only 0..99 name a camera.
"""

from __future__ import annotations

import glob
import logging
import numbers

import cv2

from .base import Frame, Source, SourceError

logger = logging.getLogger(__name__)

MAX_CAMERA_INDEX = 99


def check_camera_index(index: object) -> int:
    """``index`` as an int in 0..MAX_CAMERA_INDEX, else :class:`SourceError` saying what is allowed."""
    if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not 0 <= index <= MAX_CAMERA_INDEX:
        raise SourceError(
            f"camera index {index!r} is not valid: use a whole number from 0 to {MAX_CAMERA_INDEX} "
            "(0 is the first camera, as in --camera 0); for a file or a stream give its path or URL"
        )
    return int(index)


class CameraSource(Source):
    """A local camera through ``cv2.VideoCapture(index)`` (V4L2 on Linux).

    ``width``/``height``/``fps`` are requests; the driver may choose differently and the actual
    values are logged. A few consecutive failed reads are tolerated (USB cameras hiccup); more
    than ``max_failed_reads`` raise :class:`SourceError` (unplugged, or taken by another app).
    """

    is_live = True

    def __init__(
        self,
        index: int,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        *,
        max_failed_reads: int = 10,
    ) -> None:
        self.index = check_camera_index(index)
        super().__init__(f"camera:{self.index}")
        self.width, self.height, self.fps = width, height, fps
        self.max_failed_reads = max_failed_reads
        self._cap: cv2.VideoCapture | None = None

    def _open(self) -> None:
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            devices = sorted(glob.glob("/dev/video*"))
            found = f"video devices present: {', '.join(devices)}" if devices else "no /dev/video* device exists"
            raise SourceError(
                f"could not open camera index {self.index} ({found}). Try another index (--source 0, 1, ...), "
                "check that your user may read /dev/video* (e.g. member of the 'video' group) and that no other "
                "app holds the camera, or run without a camera: --source synthetic or --source path/to/video.mp4"
            )
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.height), (cv2.CAP_PROP_FPS, self.fps)):
            if value is not None:
                cap.set(prop, float(value))
        logger.info(
            "camera %d opened: %dx%d @ %.1f fps",
            self.index,
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            cap.get(cv2.CAP_PROP_FPS),
        )
        self._cap = cap

    def _read(self) -> Frame | None:
        assert self._cap is not None
        for _ in range(self.max_failed_reads):
            ok, image = self._cap.read()
            if ok and image is not None:
                return self._make_frame(image)
            if self._interrupted.is_set():
                return None
        self.last_error = f"{self.max_failed_reads} consecutive failed reads"
        raise SourceError(
            f"camera {self.index} stopped delivering frames ({self.max_failed_reads} failed reads in a row): "
            "was it unplugged, or taken by another application?"
        )

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
