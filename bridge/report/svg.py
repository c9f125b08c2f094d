"""Inline SVG charts (no script, no external file): stacked bars and a cumulative line.

Axis labels use the Vietnamese number format; every chart carries a <title> for
screen readers and tooltips on bars, so the HTML stays one self-contained file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from bridge.report.fmt import compact, number

LEFT, RIGHT, TOP, BOTTOM = 78, 16, 16, 44
MAX_LABELS = 16
HEADROOM = 1.12  # room above the tallest bar for its value label
AXIS = "#5b6472"
GRID = "#e3e7ee"


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    colour: str
    values: Sequence[int]


def nice_ceiling(value: float) -> tuple[float, float]:
    """(axis maximum, tick step) with steps of 1, 2 or 5 × 10^k, about five ticks."""
    if value <= 0:
        return 1.0, 1.0
    raw = value / 5
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    step = max(step, 1.0)
    return step * math.ceil(value / step), step


def stacked_bars(title: str, labels: Sequence[str], series: Sequence[Series], *,
                 width: int = 1040, height: int = 300, unit: str = "tin") -> str:
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    top, step = nice_ceiling(max(totals, default=0) * HEADROOM)
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    slot = plot_w / max(1, len(labels))
    bar_w = max(2.0, min(56.0, slot * 0.7))
    parts = [_open(title, width, height), *_y_axis(top, step, plot_w, plot_h, number)]
    for i, label in enumerate(labels):
        x = LEFT + slot * i + (slot - bar_w) / 2
        base = 0
        for s in series:
            value = s.values[i]
            if value <= 0:
                continue
            y0 = TOP + plot_h - plot_h * (base + value) / top
            h = plot_h * value / top
            parts.append(f'<rect x="{x:.1f}" y="{y0:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{s.colour}"><title>{escape(label)} – {escape(s.name)}: '
                         f'{number(value)} {unit}</title></rect>')
            base += value
        if totals[i] and len(labels) <= 31:
            parts.append(_text(x + bar_w / 2, TOP + plot_h - plot_h * totals[i] / top - 4,
                               number(totals[i]), size=11, anchor="middle", fill="#1d2530"))
    parts += _x_labels(labels, slot, plot_h)
    parts.append("</svg>")
    return "\n".join(parts)


def cumulative_line(title: str, labels: Sequence[str], values: Sequence[int], *, colour: str,
                    fmt: Callable[[float], str], width: int = 1040, height: int = 260) -> str:
    running, total = [], 0
    for v in values:
        total += v
        running.append(total)
    top, step = nice_ceiling(max(running, default=0) * HEADROOM)
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    slot = plot_w / max(1, len(labels))
    points = [(LEFT + slot * (i + 0.5), TOP + plot_h - plot_h * v / top)
              for i, v in enumerate(running)]
    parts = [_open(title, width, height), *_y_axis(top, step, plot_w, plot_h, fmt)]
    if points:
        base_y = TOP + plot_h
        area = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polygon points="{points[0][0]:.1f},{base_y:.1f} {area} '
                     f'{points[-1][0]:.1f},{base_y:.1f}" fill="{colour}" fill-opacity="0.15"/>')
        parts.append(f'<polyline points="{area}" fill="none" stroke="{colour}" stroke-width="3"/>')
        for (x, y), label, v in zip(points, labels, running, strict=True):
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}">'
                         f'<title>{escape(label)}: {escape(fmt(v))}</title></circle>')
        # The total sits above the last point, clear of the rising line.
        x, y = points[-1]
        parts.append(_text(x, max(y - 14, TOP + 12), fmt(running[-1]), size=14, anchor="end",
                           fill=colour, weight="bold"))
    parts += _x_labels(labels, slot, plot_h)
    parts.append("</svg>")
    return "\n".join(parts)


def _open(title: str, width: int, height: int) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="100%" role="img" aria-label="{escape(title)}" '
            f'font-family="Segoe UI, Roboto, Noto Sans, Arial, sans-serif">'
            f'<title>{escape(title)}</title>')


def _y_axis(top: float, step: float, plot_w: float, plot_h: float,
            fmt: Callable[[float], str]) -> list[str]:
    parts = []
    ticks = int(round(top / step))
    for k in range(ticks + 1):
        value = step * k
        y = TOP + plot_h - plot_h * value / top
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{GRID if k else AXIS}" stroke-width="1"/>')
        # "300.000.000 đồng" overflows the margin; ticks from a million up are in words.
        label = fmt(value) if value < 1e6 else compact(value)
        parts.append(_text(LEFT - 8, y + 4, label, size=11, anchor="end", fill=AXIS))
    return parts


def _x_labels(labels: Sequence[str], slot: float, plot_h: float) -> list[str]:
    every = max(1, math.ceil(len(labels) / MAX_LABELS))
    return [_text(LEFT + slot * (i + 0.5), TOP + plot_h + 18, label, size=11, anchor="middle",
                  fill=AXIS)
            for i, label in enumerate(labels) if i % every == 0]


def _text(x: float, y: float, content: str, *, size: int, anchor: str, fill: str,
          weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'fill="{fill}" font-weight="{weight}">{escape(content)}</text>')
