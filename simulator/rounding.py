"""The one rounding rule the dashboards use: JavaScript's ``Math.round`` (half up, toward +inf).

Python's ``round`` rounds half to even, so a page's "~153" or its default targets would come out one
lower at exact halves. Kept at the bottom of the import graph so data loading (pages) and physics above it
(frontier) share it.
"""

from __future__ import annotations

import math

__all__ = ["js_round"]


def js_round(value: float) -> int:
    """Round half up, like JavaScript's ``Math.round`` (2.5 -> 3, -2.5 -> -2)."""
    return int(math.floor(value + 0.5))
