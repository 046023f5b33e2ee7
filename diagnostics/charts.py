"""Server-side SVG plots for the dashboard: no JavaScript, no CDN, readable without CSS.

Each function returns a complete ``<svg>`` element (marked safe; every text in it is escaped)
with a ``<title>`` for screen readers and one per bar for hover tooltips.
"""

import math
from collections.abc import Sequence
from html import escape

from django.utils.safestring import SafeString, mark_safe

from .selectors import DayCount

COLORS = {
    "sent": "#2e7d32",
    "failed": "#c0392b",
    "bounced": "#e67e22",
    "bar": "#714b67",
    "track": "#ece8ee",
    "axis": "#9ca3af",
    "text": "#1f2933",
    "muted": "#6b7280",
}


def _nice_max(value: int) -> int:
    """A round axis maximum ≥ value: 1, 2, 5 × 10^n."""
    if value <= 0:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _svg(width: int, height: int, title: str, body: list[str], css_class: str) -> SafeString:
    return mark_safe(  # noqa: S308 - every interpolated text below went through escape()
        f'<svg class="chart {css_class}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>{"".join(body)}</svg>'
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 11,
          color: str = COLORS["muted"], weight: str = "normal") -> str:  # fmt: skip
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{color}" '
        f'text-anchor="{anchor}" font-weight="{weight}" font-family="system-ui, sans-serif">'
        f"{escape(text)}</text>"
    )


def mail_per_day_chart(days: Sequence[DayCount]) -> SafeString:
    """Stacked bars (sent / failed / bounced) per day, oldest on the left."""
    width, height = 760, 260
    left, right, top, bottom = 44, 12, 30, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice_max(max((d.sent + d.failed + d.bounced for d in days), default=0))
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.7, 1)
    body: list[str] = []
    # Horizontal grid with 4 steps, labelled on the left.
    for i in range(5):
        value = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        body.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
            f'stroke="{COLORS["track"]}" />'
        )
        label = f"{value:.0f}" if peak >= 4 else f"{value:.1f}".rstrip("0").rstrip(".")
        body.append(_text(left - 6, y + 4, label, anchor="end"))
    for index, day in enumerate(days):
        x = left + index * slot + (slot - bar_w) / 2
        y = top + plot_h
        tip = f"{day.day.isoformat()}: {day.sent} sent, {day.failed} failed, {day.bounced} bounced"
        body.append(f'<g class="day" data-day="{day.day.isoformat()}"><title>{escape(tip)}</title>')
        for series in ("sent", "failed", "bounced"):
            count = getattr(day, series)
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            body.append(
                f'<rect class="bar-{series}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{COLORS[series]}" />'
            )
        body.append("</g>")
        if index % 5 == 0 or index == len(days) - 1:
            body.append(
                _text(
                    x + bar_w / 2, height - bottom + 16, day.day.strftime("%m-%d"), anchor="middle"
                )
            )
    body.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" '
        f'stroke="{COLORS["axis"]}" />'
    )
    x = left
    for series in ("sent", "failed", "bounced"):
        total = sum(getattr(d, series) for d in days)
        body.append(f'<rect x="{x}" y="8" width="12" height="12" fill="{COLORS[series]}" />')
        body.append(_text(x + 16, 18, f"{series} ({total})", color=COLORS["text"]))
        x += 120
    title = f"Mail per day, last {len(days)} days: sent, failed and bounced"
    return _svg(width, height, title, body, "chart-mail-per-day")


def _meter(
    *, value: float, limit: float, label: str, color: str, title: str, css_class: str,
    marks: Sequence[tuple[float, str]] = (),
) -> SafeString:  # fmt: skip
    width, height = 360, 74
    left, right = 8, 8
    track_w = width - left - right
    share = min(value / limit, 1.0) if limit else 0.0
    body = [
        _text(left, 18, label, size=14, color=COLORS["text"], weight="600"),
        f'<rect x="{left}" y="28" width="{track_w}" height="20" rx="4" fill="{COLORS["track"]}" />',
        f'<rect class="meter-fill" x="{left}" y="28" width="{track_w * share:.1f}" height="20" '
        f'rx="4" fill="{color}" />',
    ]
    for at, text in marks:
        x = left + track_w * min(at / limit, 1.0)
        body.append(
            f'<line x1="{x:.1f}" y1="24" x2="{x:.1f}" y2="52" stroke="{COLORS["text"]}" '
            'stroke-dasharray="3 2" />'
        )
        body.append(_text(x, 66, text, anchor="middle", size=10))
    return _svg(width, height, title, body, css_class)


def quota_chart(*, used: int, limit: int) -> SafeString:
    share = used / limit if limit else 1.0
    color = COLORS["sent"] if share < 0.8 else COLORS["bounced"] if share < 1 else COLORS["failed"]
    return _meter(
        value=used,
        limit=limit or 1,
        label=f"{used} of {limit} mails today ({100 * share:.0f}%)",
        color=color,
        title=f"Daily quota: {used} used of {limit}",
        css_class="chart-quota",
    )


# Rules of thumb of mailbox providers: around 2% of bounces a sender is watched, around 5% its
# mail starts being throttled or refused. The bar spans 0-10%.
BOUNCE_WATCH, BOUNCE_RISK, BOUNCE_SCALE = 2.0, 5.0, 10.0


def bounce_rate_chart(*, bounced: int, sent: int, rate: float) -> SafeString:
    color = (
        COLORS["sent"]
        if rate < BOUNCE_WATCH
        else COLORS["bounced"]
        if rate < BOUNCE_RISK
        else COLORS["failed"]
    )
    return _meter(
        value=rate,
        limit=BOUNCE_SCALE,
        label=f"Bounce rate {rate:.1f}% ({bounced} of {sent} sent, 30 days)",
        color=color,
        title=f"Bounce rate over 30 days: {rate:.1f}%",
        css_class="chart-bounce-rate",
        marks=[(BOUNCE_WATCH, "2% watch"), (BOUNCE_RISK, "5% risk")],
    )


# Gmail's bulk sender guidelines: keep the spam rate under 0.1 %, never reach 0.3 %.
COMPLAINT_WATCH, COMPLAINT_LIMIT, COMPLAINT_SCALE = 0.1, 0.3, 0.5


def complaint_rate_chart(*, complaints: int, sent: int, rate: float) -> SafeString:
    color = COLORS["sent"] if rate < COMPLAINT_WATCH else COLORS["bounced"]
    if rate >= COMPLAINT_LIMIT:
        color = COLORS["failed"]
    return _meter(
        value=rate,
        limit=COMPLAINT_SCALE,
        label=f"Complaint rate {rate:.2f}% ({complaints} of {sent} sent, 30 days)",
        color=color,
        title=f"Complaint rate over 30 days: {rate:.2f}%",
        css_class="chart-complaint-rate",
        marks=[(COMPLAINT_WATCH, "0.1% watch"), (COMPLAINT_LIMIT, "0.3% line")],
    )


def queue_depth_chart(states: Sequence[tuple[str, str, int]]) -> SafeString:
    """One horizontal bar per state of the outbox."""
    row_h, left, width = 26, 120, 360
    height = row_h * len(states) + 8
    peak = _nice_max(max((n for _, _, n in states), default=0))
    colors = {"exception": COLORS["failed"], "sent": COLORS["sent"], "cancel": COLORS["axis"]}
    body = []
    for index, (state, label, count) in enumerate(states):
        y = 4 + index * row_h
        w = (width - left - 50) * count / peak
        body.append(f'<g class="state" data-state="{escape(state)}">')
        body.append(f"<title>{escape(label)}: {count}</title>")
        body.append(_text(left - 8, y + 15, label, anchor="end", color=COLORS["text"]))
        body.append(
            f'<rect x="{left}" y="{y + 3}" width="{max(w, 1):.1f}" height="16" rx="3" '
            f'fill="{colors.get(state, COLORS["bar"])}" />'
        )
        body.append(_text(left + max(w, 1) + 6, y + 15, str(count), color=COLORS["text"]))
        body.append("</g>")
    total = sum(n for _, _, n in states)
    return _svg(width, height, f"Queue depth by state ({total} mails)", body, "chart-queue")
