"""Training: datasets, segment sampling, augmentation, the loop, evaluation, the default model recipe.

Submodules that need torch import it themselves. The synthetic gesture data comes from
``streamtsm.synthetic`` (numpy/OpenCV only: the synthetic live source on the runtime path uses it).
"""
