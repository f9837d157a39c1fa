"""Pretrained weights by name (torch-free): the cache root under ``STREAMTSM_HOME``."""

from .home import exports_dir, home_dir, weights_dir

__all__ = ["exports_dir", "home_dir", "weights_dir"]
