"""Small server-drawn SVG charts for the usage pages: no script, nothing fetched, every
label escaped."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 220, 56, 28, 12


def _number(value: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}{suffix}".replace(".0", "")
    return f"{value:g}"


def bars_over_time(
    title: str,
    days: Sequence[str],
    values: Sequence[float],
    *,
    limit: float | None = None,
    cumulative: Sequence[float] | None = None,
    colour: str = "#155EEF",
) -> SafeString:
    """Daily bars; with `cumulative`, the running total as a line; with `limit`, a dashed
    line where the limit is (the scale takes in whichever is highest)."""
    top = max([*values, *(cumulative or []), limit or 0, 1])
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    step = plot_w / max(1, len(days))

    def y(value: float) -> float:
        return TOP + plot_h - plot_h * value / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'class="weft-chart" aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 8}" y2="{TOP + plot_h}" '
        'stroke="#98a2b3"/>',
    ]
    for fraction in (0.5, 1.0):
        parts.append(
            f'<text x="{LEFT - 6}" y="{y(top * fraction) + 4:.1f}" text-anchor="end" '
            f'font-size="11" fill="#667085">{_number(top * fraction)}</text>'
        )
    for index, (day, value) in enumerate(zip(days, values, strict=True)):
        x = LEFT + index * step
        height = TOP + plot_h - y(value)
        parts.append(
            f'<rect x="{x + step * 0.15:.1f}" y="{y(value):.1f}" width="{step * 0.7:.1f}" '
            f'height="{height:.1f}" fill="{escape(colour)}" opacity="0.75">'
            f"<title>{escape(day)}: {value:,.0f}</title></rect>"
        )
        if index % max(1, len(days) // 6) == 0:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle" '
                f'font-size="11" fill="#667085">{escape(day[5:])}</text>'
            )
    if cumulative:
        points = " ".join(
            f"{LEFT + i * step + step / 2:.1f},{y(v):.1f}" for i, v in enumerate(cumulative)
        )
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="#0F766E" stroke-width="2">'
            "<title>Running total this period</title></polyline>"
        )
    if limit:
        # The label above the line, or below it when the line is at the top.
        label_y = y(limit) - 4 if y(limit) - 4 >= TOP + 2 else y(limit) + 13
        parts.append(
            f'<line x1="{LEFT}" y1="{y(limit):.1f}" x2="{WIDTH - 8}" y2="{y(limit):.1f}" '
            'stroke="#D92D20" stroke-dasharray="6 4"><title>Limit</title></line>'
            f'<text x="{WIDTH - 10}" y="{label_y:.1f}" text-anchor="end" font-size="11" '
            f'fill="#D92D20">limit {_number(limit)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped text only


def horizontal_bars(
    title: str, rows: Sequence[tuple[str, float, str]], colour: str = "#155EEF"
) -> SafeString:
    """One bar per (label, value, shown value), longest first as given."""
    rows = list(rows)[:12]
    row_h, label_w = 24, 220
    height = max(1, len(rows)) * row_h + 8
    top = max([value for _, value, _ in rows] + [1])
    # Room after the longest bar for its shown value (about 7 units a character at 12).
    bar_w = WIDTH - label_w - 12 - 7 * max([len(shown) for _, _, shown in rows] + [0])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'class="weft-chart" aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for index, (label, value, shown) in enumerate(rows):
        y = 4 + index * row_h
        width = max(0, bar_w) * value / top
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" font-size="12" '
            f'fill="#344054">{escape(label[:36])}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{width:.1f}" height="{row_h - 8}" '
            f'fill="{escape(colour)}" opacity="0.75"/>'
            f'<text x="{label_w + width + 6:.1f}" y="{y + 16}" font-size="12" '
            f'fill="#344054">{escape(shown)}</text>'
        )
    if not rows:
        parts.append('<text x="8" y="20" font-size="12" fill="#667085">Nothing yet.</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped text only
