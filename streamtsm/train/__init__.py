"""Training: datasets, segment sampling, augmentation, the loop, and the synthetic gesture data.

Submodules that need torch import it themselves; ``streamtsm.train.synthetic`` is numpy/OpenCV
only because the synthetic live source (runtime path) uses it.
"""
