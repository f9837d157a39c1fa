"""A stratified, seeded train/validation split of a labelled clip list.

Why stratified: the datasets this is for are small (20 takes per gesture), so a random split can
leave a class out of validation, or most of it; holding out the same fraction of every class keeps
the validation score meaningful and early stopping honest. Why seeded by position only: the same
clips in the same order and seed give the same split on any machine, so a resumed run validates
on the clips it validated on before.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["SplitError", "stratified_split"]


class SplitError(ValueError):
    """The split cannot be made (bad fraction, a class too small to hold a clip out)."""


def stratified_split(labels: Sequence[int], fraction: float, seed: int = 0,
                     class_names: Sequence[str] | None = None) -> tuple[list[int], list[int]]:
    """Indices ``(train, val)``: of each class's n clips, ``max(1, round(fraction * n))`` go to validation.

    Every class needs at least two clips (one on each side); the error names the classes that
    have fewer. Both index lists are sorted.
    """
    if not 0 < fraction < 1:
        raise SplitError(f"the validation fraction must be between 0 and 1 (e.g. 0.2), got {fraction!r}")
    labels = [int(v) for v in labels]
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    name = (lambda c: repr(class_names[c])) if class_names is not None else str
    small = [f"{name(c)} ({len(v)} clip)" for c, v in sorted(by_class.items()) if len(v) < 2]
    if small:
        raise SplitError(f"cannot hold out validation clips of class(es) {', '.join(small)}: each class needs at least 2 "
                         "clips; add clips or train without --val-fraction")
    rng = np.random.default_rng([int(seed), 17])
    val: list[int] = []
    for c in sorted(by_class):
        members = by_class[c]
        k = min(len(members) - 1, max(1, int(round(fraction * len(members)))))
        val += [members[j] for j in rng.permutation(len(members))[:k]]
    held = set(val)
    return [i for i in range(len(labels)) if i not in held], sorted(val)
