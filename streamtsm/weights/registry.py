"""The weight registry: one frozen entry per published weight file, named ``arch.tag`` (timm style).

An entry says where the file is (URLs, file name, checksum where one is published or derivable),
what it is (the checkpoint format our loader must detect, the architecture it loads into) and the
card fields that belong to those weights and cannot be read from the tensors: class names,
preprocessing, frame rate and clip sampling, shift mode. Every constant was read from the source
project's own code or pages; the file each came from is named beside it. Where a source does not
fix a value, the entry lists that field in ``unverified`` instead of passing a guess off as a fact.

Checksums: torchvision and mmaction2 file names end in the first 8 hex digits of the file's SHA-256
(torch.hub's ``HASH_REGEX`` checks them for torchvision; mmaction2's
``tools/deployment/publish_model.py`` appends ``sha256sum[:8]`` to the name), so those prefixes are
recorded and checked. The official TSM files publish none: the first download that loads strictly
into its architecture records its SHA-256 in the cache (see ``cache.py``).

Torch-free.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..card import IMAGENET_MEAN, IMAGENET_STD, KINETICS_MEAN, KINETICS_STD, ModelCard, Preprocessing, Temporal
from .labels import load_labels

_NAME = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_HEX = re.compile(r"^[0-9a-f]{8,64}$")


class WeightsError(ValueError):
    """A weight name, entry, download or cached file cannot be used (the message says what to do)."""


@dataclass(frozen=True)
class WeightEntry:
    """One published weight file and the card fields that belong to it.

    ``sha256`` is the full digest or a hex prefix of it ("" when none is published);
    ``checkpoint_format`` the format ``load_model`` must detect in the file; ``labels`` the shipped
    label list (``streamtsm/assets/labels``), "" for ImageNet backbones, which initialise training
    (``streamtsm train --init NAME --arch ARCH``) and are not video models by themselves (``temporal`` is None).
    """

    name: str
    arch: str
    task: str
    urls: tuple[str, ...]
    file_name: str
    checkpoint_format: str
    num_classes: int
    labels: str
    preprocessing: Preprocessing
    temporal: Temporal | None
    shift_mode: str
    source: str
    license: str
    sha256: str = ""
    sha256_note: str = ""
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    background_classes: tuple[str, ...] = ()
    unverified: tuple[str, ...] = ()
    size_mb: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise WeightsError(f"weight name {self.name!r} must be arch.tag in lower case letters, digits and _")
        if not _FILE_NAME.match(self.file_name) or self.file_name in (".", ".."):
            raise WeightsError(f"{self.name}: file name {self.file_name!r} must be a plain file name (no folders)")
        if not self.urls:
            raise WeightsError(f"{self.name}: needs at least one URL")
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise WeightsError(f"{self.name}: URL {url!r} is not http(s)")
        if self.sha256 and not _HEX.match(self.sha256):
            raise WeightsError(f"{self.name}: sha256 {self.sha256!r} must be 8-64 lower-case hex digits")
        if (self.temporal is None) != self.is_backbone:
            raise WeightsError(f"{self.name}: video entries need temporal settings; backbones (no labels) have none")

    @property
    def is_backbone(self) -> bool:
        """An ImageNet backbone: accepted only to initialise training, not as a video model."""
        return not self.labels

    @property
    def class_names(self) -> tuple[str, ...]:
        return load_labels(self.labels) if self.labels else ()

    def card_overrides(self) -> dict[str, Any]:
        """The ModelCard fields these weights fix (everything but arch/arch_kwargs/state)."""
        if self.temporal is None:
            raise WeightsError(
                f"{self.name} is an ImageNet backbone for `streamtsm train --init NAME --arch ARCH`, not a video model"
            )
        return {
            "class_names": self.class_names,
            "background_classes": self.background_classes,
            "preprocessing": self.preprocessing,
            "temporal": self.temporal,
            "shift_mode": self.shift_mode,
            "description": self.description,
            "weights_name": self.name,
            "unverified": self.unverified,
        }

    def check_card(self, card: ModelCard) -> None:
        """Refuse a loaded file whose detected card contradicts the entry (a wrong file under this name)."""
        wrong = [
            f"{what} {got!r} (entry: {want!r})"
            for what, got, want in (
                ("architecture", card.arch, self.arch),
                ("format", card.source_format, self.checkpoint_format),
                ("classes", card.num_classes, self.num_classes),
                ("shift mode", card.shift_mode, self.shift_mode),
            )
            if got != want
        ]
        if wrong:
            raise WeightsError(f"the file for {self.name} is not what the entry describes: " + ", ".join(wrong))

    def card(self) -> ModelCard:
        """The card of a model loaded from these weights (without the state spec, which needs the model)."""
        kwargs = {"num_classes": self.num_classes, **self.arch_kwargs}
        return ModelCard(arch=self.arch, arch_kwargs=kwargs, source_format=self.checkpoint_format, **self.card_overrides())

    def summary(self) -> dict[str, Any]:
        """Plain fields for tables and JSON (``streamtsm models``)."""
        t, p = self.temporal, self.preprocessing
        if t is None:
            clip = f"{p.crop_size}²"
        elif t.mode == "online":
            clip = f"1×{p.crop_size}² online"
        else:
            clip = f"{t.clip_len}×{p.crop_size}²"
        return {
            "name": self.name,
            "task": self.task,
            "arch": self.arch,
            "classes": self.num_classes if not self.is_backbone else None,
            "input": clip,
            "fps": t.fps if t is not None else None,
            "shift_mode": self.shift_mode,
            "size_mb": self.size_mb,
            "source": self.source,
            "license": self.license,
            "format": self.checkpoint_format,
            "urls": list(self.urls),
            "file_name": self.file_name,
            "sha256": self.sha256 or None,
            "unverified": list(self.unverified),
        }


# -- card constants per source ------------------------------------------------------------------

# Official TSM: ops/models.py (input_size 224, input_mean [0.485, 0.456, 0.406], input_std
# [0.229, 0.224, 0.225], scale_size = 224 * 256 // 224 = 256) and test_models.py (GroupScale(scale_size),
# GroupCenterCrop(input_size)); frames are read as RGB (ops/dataset.py: Image.open(...).convert('RGB')).
# The online demo uses the same (online_demo/main.py get_transform: GroupScale(256), GroupCenterCrop(224),
# GroupNormalize with those mean/std).
_TSM_PRE = Preprocessing(crop_size=224, resize_short=256, mean=IMAGENET_MEAN, std=IMAGENET_STD, channel_order="RGB")
# torchvision video: torchvision/models/video/resnet.py (VideoClassification, crop_size=(112, 112),
# resize_size=(128, 171)); torchvision/transforms/_presets.py (VideoClassification mean (0.43216, 0.394666,
# 0.37645), std (0.22803, 0.22145, 0.216989), in 0-1 units: KINETICS_MEAN/STD are the same x 255).
_TV_VIDEO_PRE = Preprocessing(crop_size=112, resize_short=None, resize_hw=(128, 171), mean=KINETICS_MEAN, std=KINETICS_STD)
# torchvision video: resnet.py _COMMON_META _docs: "estimated on video-level with parameters frame_rate=15,
# clips_per_video=5, and clip_len=16".
_TV_VIDEO_TIME = Temporal(mode="window", fps=15.0, num_segments=16, clip_len=16, clip_layout="NCTHW")
# torchvision ImageNet: torchvision/models/mobilenetv2.py and resnet.py IMAGENET1K_V1 (ImageClassification,
# crop_size=224; resize_size defaults to 256 in transforms/_presets.py, mean/std ImageNet).
_TV_IMAGENET_PRE = Preprocessing(crop_size=224, resize_short=256, mean=IMAGENET_MEAN, std=IMAGENET_STD)
# mmaction2: data_preprocessor mean [123.675, 116.28, 103.53], std [58.395, 57.12, 57.375] in
# configs/_base_/models/{slowfast_r50,i3d_r50,slowonly_r50}.py; val_pipeline Resize(-1, 256), CenterCrop(224)
# in each recipe's config.
_MM_PRE = Preprocessing(crop_size=224, resize_short=256, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def _strided_clip(clip_len: int, frame_interval: int, layout: str = "NCTHW") -> Temporal:
    """A clip of ``clip_len`` frames taken every ``frame_interval``-th frame of the video.

    mmaction2's ``SampleFrames`` and TSM's dense sampling count source frames, not seconds; Kinetics
    videos are ~30 fps, so the clip's rate is 30 / frame_interval (a 25 fps camera would need
    25 / frame_interval to match: the session resamples to the card's rate).
    """
    return Temporal(mode="window", fps=30.0 / frame_interval, num_segments=clip_len, clip_len=clip_len, clip_layout=layout)


_KINETICS = "actions (Kinetics-400)"
_TSM_LICENSE = "MIT (mit-han-lab/temporal-shift-module); trained on {}, whose terms apply"
_TV_LICENSE = "BSD-3-Clause (pytorch/vision); trained on {}, whose terms apply"
_MM_LICENSE = "Apache-2.0 (open-mmlab/mmaction2); trained on Kinetics-400, whose terms apply"
# torch.hub's HASH_REGEX: the hex digits after the last '-' of a file name are a prefix of its SHA-256
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")


def _file_of(url: str) -> tuple[str, str]:
    """(file name, the SHA-256 prefix its name carries or "")."""
    name = url.rsplit("/", 1)[1]
    m = _HASH_IN_NAME.search(name)
    return name, m[1] if m else ""


def _tsm_offline(name: str, arch: str, task: str, url: str, classes: int, labels: str, temporal: Temporal,
                 description: str, dataset: str = "Kinetics-400", unverified: tuple[str, ...] = ()) -> WeightEntry:
    """An official offline TSM file (README tables): bidirectional shift ("shift8_blockres"), TSM preprocessing."""
    return WeightEntry(
        name=name, arch=arch, arch_kwargs={"shift_mode": "bi"}, task=task, urls=(url,), file_name=_file_of(url)[0],
        sha256_note="none published (the TSM README gives only the URL); recorded at the first verified download",
        checkpoint_format="tsm_official_offline", num_classes=classes, labels=labels, preprocessing=_TSM_PRE,
        temporal=temporal, shift_mode="bi", unverified=unverified, source="TSM official",
        license=_TSM_LICENSE.format(dataset), description=description,
    )


def _torchvision(name: str, arch: str, url: str, fmt: str, size_mb: float, description: str) -> WeightEntry:
    """A torchvision Weights file: SHA-256 prefix in the name (checked by torch.hub), BSD-3-Clause code."""
    file_name, prefix = _file_of(url)
    backbone = fmt == "torchvision_imagenet"
    return WeightEntry(
        name=name, arch=arch, task="ImageNet backbone (training init)" if backbone else _KINETICS, urls=(url,),
        file_name=file_name, sha256=prefix,
        sha256_note="first 8 hex digits of the SHA-256, in the file name (torch.hub check_hash, torchvision get_state_dict)",
        checkpoint_format=fmt, num_classes=1000 if backbone else 400, labels="" if backbone else "kinetics400",
        preprocessing=_TV_IMAGENET_PRE if backbone else _TV_VIDEO_PRE, temporal=None if backbone else _TV_VIDEO_TIME,
        shift_mode="none", size_mb=size_mb, source="torchvision",
        license=_TV_LICENSE.format("ImageNet-1k" if backbone else "Kinetics-400"), description=description,
    )


def _mmaction2(name: str, arch: str, url: str, fmt: str, temporal: Temporal, description: str) -> WeightEntry:
    """An mmaction2 model-zoo file (Kinetics-400, 400 classes, mmaction2 preprocessing, hash prefix in the name)."""
    file_name, prefix = _file_of(url)
    return WeightEntry(
        name=name, arch=arch, task=_KINETICS, urls=(url,), file_name=file_name, sha256=prefix,
        sha256_note="first 8 hex digits of the SHA-256, in the file name (mmaction2 tools/deployment/publish_model.py)",
        checkpoint_format=fmt, num_classes=400,  # cls_head num_classes=400 in configs/_base_/models/<arch>.py
        labels="kinetics400",  # tools/data/kinetics/label_map_k400.txt
        preprocessing=_MM_PRE, temporal=temporal, shift_mode="none", source="mmaction2", license=_MM_LICENSE,
        description=description,
    )


# TSN-style uniform sampling (ops/dataset.py _get_val_indices: num_segments ticks spread over the whole
# video) has no frame rate: the card's fps spreads the 8 frames over a typical clip and is marked unverified.
_UNIFORM_NOTE = "uniform (TSN) sampling: 8 frames spread over the whole video; fps is an approximation for live use"
_TSM_URL = "https://hanlab18.mit.edu/projects/tsm/models/"
_MM_URL = "https://download.openmmlab.com/mmaction/v1.0/recognition/"

_ENTRIES: tuple[WeightEntry, ...] = (
    WeightEntry(
        name="tsm_mobilenetv2.jester_online",
        arch="tsm_mobilenetv2",
        arch_kwargs={"shift_mode": "uni"},
        task="gestures (Jester)",
        # online_demo/main.py get_executor: url = 'https://hanlab18.mit.edu/projects/tsm/models/mobilenetv2_jester_online.pth.tar'
        urls=(_TSM_URL + "mobilenetv2_jester_online.pth.tar",),
        file_name="mobilenetv2_jester_online.pth.tar",
        sha256_note="none published (online_demo/main.py gives only the URL); recorded at the first verified download",
        checkpoint_format="tsm_official_online",
        num_classes=27,  # online_demo/main.py: MobileNetV2(n_class=27), 27 `catigories`
        labels="jester",  # the `catigories` list of online_demo/main.py
        preprocessing=_TSM_PRE,
        # fps: Jester is recorded at 12 fps (mmaction2 tools/data/jester/encode_videos.sh rebuilds its videos
        # with --fps 12); the online demo feeds every other camera frame (online_demo/main.py:
        # `if i_frame % 2 == 0:  # skip every other frame to obtain a suitable frame rate`), i.e. 12-15 fps
        # from a 24-30 fps webcam.
        temporal=Temporal(mode="online", fps=12.0, num_segments=8, clip_len=8, clip_layout="NTCHW"),
        shift_mode="uni",  # online_demo/mobilenet_v2_tsm.py: the shift takes the cached fold of the last frame
        # online_demo/main.py process_output: "use only single no action class" (0 -> 2): both mean no gesture
        background_classes=("Doing other things", "No gesture"),
        source="TSM official",
        license=_TSM_LICENSE.format("Jester"),
        description="official TSM online demo: MobileNetV2, unidirectional shift, Jester gestures (Jetson Nano demo)",
    ),
    # README "Kinetics-400 / Dense Sample" table (TSM MobileNetV2 69.5%, TSM ResNet50 74.1%); 400 classes
    # (ops/dataset_config.py return_kinetics) indexed by tools/kinetics_label_map.txt (gen_label_kinetics.py);
    # ops/dataset.py dense_sample: t_stride = 64 // num_segments = 8 source frames, 8 segments (file name).
    _tsm_offline(
        "tsm_mobilenetv2.kinetics400", "tsm_mobilenetv2", _KINETICS,
        _TSM_URL + "TSM_kinetics_RGB_mobilenetv2_shift8_blockres_avg_segment8_e100_dense.pth", 400, "kinetics400",
        _strided_clip(clip_len=8, frame_interval=8, layout="NTCHW"),
        "official TSM MobileNetV2, Kinetics-400, dense sampling (8 frames, stride 8), offline (bidirectional)",
    ),
    _tsm_offline(
        "tsm_resnet50.kinetics400", "tsm_resnet50", _KINETICS,
        _TSM_URL + "TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e100_dense.pth", 400, "kinetics400",
        _strided_clip(clip_len=8, frame_interval=8, layout="NTCHW"),
        "official TSM ResNet-50, Kinetics-400, dense sampling (8 frames, stride 8), offline (bidirectional)",
    ),
    # README "Kinetics-400 / Uniform Sampling" table, TSM ResNet50 8 * 1clip 71.2% (the file
    # scripts/train_tsm_kinetics_rgb_8f.sh trains); 8 segments over a 10 s Kinetics clip: 0.8 fps.
    _tsm_offline(
        "tsm_resnet50.kinetics400_uniform", "tsm_resnet50", _KINETICS,
        _TSM_URL + "TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e50.pth", 400, "kinetics400",
        Temporal(mode="window", fps=0.8, num_segments=8, clip_len=8, max_gap_s=5.0, clip_layout="NTCHW"),
        f"official TSM ResNet-50, Kinetics-400, offline (bidirectional); {_UNIFORM_NOTE}", unverified=("fps",),
    ),
    # README "Something-Something-V2" table, TSM ResNet50 8 * 2clip 61.2; 174 classes of 20BN's
    # something-something-v2-labels.json (tools/gen_label_sthv2.py); test_models.py uses the same
    # GroupScale(256) + GroupCenterCrop(224) for every dataset; 8 segments over a ~4 s clip: 2 fps.
    _tsm_offline(
        "tsm_resnet50.sthv2", "tsm_resnet50", "actions (Something-Something V2)",
        _TSM_URL + "TSM_somethingv2_RGB_resnet50_shift8_blockres_avg_segment8_e45.pth", 174, "sthv2",
        Temporal(mode="window", fps=2.0, num_segments=8, clip_len=8, max_gap_s=2.0, clip_layout="NTCHW"),
        f"official TSM ResNet-50, Something-Something V2, offline (bidirectional); {_UNIFORM_NOTE}",
        dataset="Something-Something V2", unverified=("fps",),
    ),
    # torchvision/models/video/resnet.py: R2Plus1D_18_Weights / R3D_18_Weights.KINETICS400_V1 url and meta
    # "_file_size"; "categories": _KINETICS400_CATEGORIES.
    _torchvision("r2plus1d_18.kinetics400", "r2plus1d_18", "https://download.pytorch.org/models/r2plus1d_18-91a641e6.pth",
                 "torchvision_r2plus1d", 120.318, "torchvision R(2+1)D-18, Kinetics-400 (16 frames at 15 fps, 112²)"),
    _torchvision("r3d_18.kinetics400", "r3d_18", "https://download.pytorch.org/models/r3d_18-b3b3357e.pth",
                 "torchvision_r3d", 127.359, "torchvision R3D-18, Kinetics-400 (16 frames at 15 fps, 112²)"),
    # torchvision/models/mobilenetv2.py MobileNet_V2_Weights.IMAGENET1K_V1 and resnet.py ResNet50_Weights.IMAGENET1K_V1
    # (url, "_file_size"); V1 of ResNet-50 is what the official TSM trained from (ops/models.py:
    # torchvision.models.resnet50(True)).
    _torchvision("mobilenet_v2.imagenet", "tsm_mobilenetv2", "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
                 "torchvision_imagenet", 13.555,
                 "torchvision MobileNetV2 ImageNet-1k (V1): backbone initialisation for tsm_mobilenetv2/tsn_mobilenetv2"),
    _torchvision("resnet50.imagenet", "tsm_resnet50", "https://download.pytorch.org/models/resnet50-0676ba61.pth",
                 "torchvision_imagenet", 97.781,
                 "torchvision ResNet-50 ImageNet-1k (V1): backbone initialisation for tsm_resnet50/tsn_resnet50"),
    # mmaction2 configs/recognition/<family>/metafile.yml "Weights" of each recipe; the clip is the recipe
    # config's SampleFrames(clip_len, frame_interval) (SlowFast 4x16: the backbone's resample_rate=8 and
    # speed_ratio=8 in configs/_base_/models/slowfast_r50.py give 4 slow and 32 fast frames).
    _mmaction2("slowfast_r50.kinetics400", "slowfast_r50",
               _MM_URL + "slowfast/slowfast_r50_8xb8-4x16x1-256e_kinetics400-rgb/"
               "slowfast_r50_8xb8-4x16x1-256e_kinetics400-rgb_20220901-701b0f6f.pth",
               "mmaction2_slowfast", _strided_clip(clip_len=32, frame_interval=2),
               "mmaction2 SlowFast R50 4x16, Kinetics-400 (32 frames every 2nd, 224²)"),
    _mmaction2("i3d_r50.kinetics400", "i3d_r50",
               _MM_URL + "i3d/i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb/"
               "i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb_20220812-e213c223.pth",
               "mmaction2_resnet3d", _strided_clip(clip_len=32, frame_interval=2),
               "mmaction2 I3D ResNet-50 32x2, Kinetics-400 (32 frames every 2nd, 224²)"),
    _mmaction2("slowonly_r50.kinetics400", "slowonly_r50",
               _MM_URL + "slowonly/slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb/"
               "slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb_20220901-2132fc87.pth",
               "mmaction2_resnet3d", _strided_clip(clip_len=8, frame_interval=8),
               "mmaction2 SlowOnly ResNet-50 8x8, Kinetics-400 (8 frames every 8th, 224²)"),
)

_BY_NAME: dict[str, WeightEntry] = {e.name: e for e in _ENTRIES}
if len(_BY_NAME) != len(_ENTRIES):
    raise WeightsError("two weight entries share a name")
if len({e.file_name for e in _ENTRIES}) != len(_ENTRIES):
    raise WeightsError("two weight entries share a file name (they would overwrite each other in the cache)")


def list_weights(pattern: str = "*") -> list[WeightEntry]:
    """Entries whose name matches a shell-style pattern (``"tsm_*"``, ``"*.kinetics400"``), sorted by name."""
    return [_BY_NAME[n] for n in sorted(_BY_NAME) if fnmatch.fnmatch(n, pattern)]


def find_weight(name: str) -> WeightEntry | None:
    """The entry called ``name``, or None (for the resolver: a string may be a path instead)."""
    return _BY_NAME.get(name)


def closest_names(name: str, n: int = 5) -> list[str]:
    """Entry names close to a misspelled ``name`` (difflib ratio, then names sharing its arch or tag)."""
    names = sorted(_BY_NAME)
    lowered = {k.lower(): k for k in names}
    close = [lowered[m] for m in difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)]
    arch, _, tag = name.lower().partition(".")
    for k in names:
        a, _, t = k.partition(".")
        if len(close) < n and k not in close and ((arch and arch == a) or (tag and tag == t)):
            close.append(k)
    return close


def near_miss_message(name: str) -> str | None:
    """For a string that is neither a file nor a weight name but close to some: the error saying so."""
    if "/" in name or os.sep in name or find_weight(name) is not None or not (close := closest_names(name)):
        return None
    return f"{name!r} is neither a file nor a weight name. Closest weight names: {', '.join(close)} (`streamtsm models` lists them all)"


def get_weight(name: str) -> WeightEntry:
    """The entry called ``name``; an unknown name fails with the closest names."""
    entry = find_weight(name)
    if entry is None:
        close = closest_names(name)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise WeightsError(f"unknown weight name {name!r}.{hint} `streamtsm models` lists all {len(_BY_NAME)} names.")
    return entry

