"""Inline SVG line plots for the review page (colour drift along a chain).

Pure string building, no plotting library: the page must work offline and stay small.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

COLOURS = ("#d9480f", "#1971c2", "#2f9e44", "#7048e8", "#c2255c")


def line_plot(series: Mapping[str, Sequence[tuple[float, float]]], *, width: int = 640, height: int = 160,
              x_label: str = "", y_label: str = "", title: str = "") -> str:
    """An SVG of one line per named series of (x, y) points, with a zero line and labelled axes."""
    points = [p for pts in series.values() for p in pts]
    if not points:
        return ""
    left, right, top, bottom = 52, 12, 18, 28
    xs = [p[0] for p in points]
    ys = [p[1] for p in points] + [0.0]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    span = max(abs(min(ys)), abs(max(ys)), 1e-3) * 1.15
    y0, y1 = (-span, span) if min(ys) < 0 else (0.0, span)

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return top + (y1 - y) / (y1 - y0) * (height - top - bottom)

    out = [f'<svg class="plot" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
           f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
           f'fill="#fff" stroke="#ccc"/>',
           f'<line x1="{left}" x2="{width - right}" y1="{sy(0):.1f}" y2="{sy(0):.1f}" stroke="#999" '
           f'stroke-dasharray="3 3"/>']
    for value in (y0, y1):
        out.append(f'<text x="{left - 4}" y="{sy(value) + 4:.1f}" text-anchor="end" font-size="10">{value:+.3f}</text>')
    out.append(f'<text x="{left}" y="{height - 8}" font-size="10">{x0:g}</text>')
    out.append(f'<text x="{width - right}" y="{height - 8}" text-anchor="end" font-size="10">{x1:g}</text>')
    if x_label:
        out.append(f'<text x="{(left + width - right) / 2:.0f}" y="{height - 8}" text-anchor="middle" '
                   f'font-size="10">{escape(x_label)}</text>')
    if y_label:
        out.append(f'<text x="4" y="12" font-size="10">{escape(y_label)}</text>')
    for n, (name, pts) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        for x, y in pts:
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"><title>{escape(name)} '
                       f'{y:+.4f} at {x:g}</title></circle>')
        out.append(f'<text x="{width - right - 4}" y="{top + 12 + 12 * n}" text-anchor="end" font-size="10" '
                   f'fill="{colour}">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)
