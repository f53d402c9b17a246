"""A radar chart of the 8 categories as plain numbers for an inline SVG (no JavaScript, works offline)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from evals.models import CATEGORIES, CATEGORY_LABELS

RINGS = (2.0, 4.0, 6.0, 8.0, 10.0)


@dataclasses.dataclass(frozen=True)
class Axis:
    name: str
    label: str
    x: float  # end of the spoke
    y: float
    label_x: float
    label_y: float
    anchor: str  # text-anchor of the label


@dataclasses.dataclass(frozen=True)
class Series:
    name: str
    css: str
    points: str  # the polygon's "x,y x,y …"
    dots: tuple[tuple[float, float, str, float | None], ...]  # x, y, category, value


@dataclasses.dataclass(frozen=True)
class Radar:
    size: int
    center: float
    axes: tuple[Axis, ...]
    rings: tuple[tuple[float, str], ...]  # value, polygon points
    series: tuple[Series, ...]


def _point(center: float, radius: float, index: int, count: int, fraction: float) -> tuple[float, float]:
    angle = -math.pi / 2 + 2 * math.pi * index / count  # the first axis points up, then clockwise
    return (
        round(center + radius * fraction * math.cos(angle), 1),
        round(center + radius * fraction * math.sin(angle), 1),
    )


def radar(
    series: Sequence[tuple[str, Mapping[str, float | None], str]],
    *,
    size: int = 460,
    max_value: float = 10.0,
    categories: Sequence[str] = CATEGORIES,
) -> Radar:
    """Spokes for the categories and one polygon per (name, {category: value}, css class); a missing
    value is drawn at the centre (and shown as such in the dot's title)."""
    center = size / 2
    radius = center - 100  # room for the labels (Humanities, 人文科学)
    count = len(categories)
    axes = []
    for i, name in enumerate(categories):
        x, y = _point(center, radius, i, count, 1.0)
        lx, ly = _point(center, radius + 18, i, count, 1.0)
        anchor = "middle" if abs(lx - center) < 5 else ("start" if lx > center else "end")
        axes.append(Axis(name, str(CATEGORY_LABELS.get(name, name)), x, y, lx, ly + 4, anchor))
    rings = tuple(
        (
            value,
            " ".join(
                f"{x},{y}"
                for x, y in (_point(center, radius, i, count, value / max_value) for i in range(count))
            ),
        )
        for value in RINGS
        if value <= max_value
    )
    drawn = []
    for name, values, css in series:
        dots = []
        for i, category in enumerate(categories):
            value = values.get(category)
            fraction = 0.0 if value is None else max(0.0, min(1.0, value / max_value))
            x, y = _point(center, radius, i, count, fraction)
            dots.append((x, y, category, value))
        drawn.append(Series(name, css, " ".join(f"{x},{y}" for x, y, _c, _v in dots), tuple(dots)))
    return Radar(size, center, tuple(axes), rings, tuple(drawn))
