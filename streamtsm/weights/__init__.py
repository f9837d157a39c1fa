"""Pretrained weights by name (torch-free): registry, cache under ``STREAMTSM_HOME``, download, integrity.

``list_weights()`` lists the entries, ``download(name)`` prefetches one, ``weight_file(name)`` gives
its checked local file (downloading when needed), ``find_weight``/``closest_names`` let a resolver
tell a weight name from a path, and ``WeightEntry.card_overrides()`` are the card fields that belong
to the weights. ``streamtsm.load_model(NAME)`` uses all of this.
"""

from .cache import CachedWeight, cached_file, download, ensure_weight, weight_file, weight_path
from .fetch import DownloadError, DownloadOptions, is_offline, mirrored
from .home import exports_dir, home_dir, weights_dir
from .labels import label_sets, load_labels
from .registry import WeightEntry, WeightsError, closest_names, find_weight, get_weight, list_weights, near_miss_message

__all__ = [
    "CachedWeight",
    "DownloadError",
    "DownloadOptions",
    "WeightEntry",
    "WeightsError",
    "cached_file",
    "closest_names",
    "near_miss_message",
    "download",
    "ensure_weight",
    "exports_dir",
    "find_weight",
    "get_weight",
    "home_dir",
    "is_offline",
    "label_sets",
    "list_weights",
    "load_labels",
    "mirrored",
    "weight_file",
    "weight_path",
    "weights_dir",
]
