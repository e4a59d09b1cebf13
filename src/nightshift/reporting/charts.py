"""Charts for report pages: Plotly figures serialised to JSON and drawn by the local plotly.min.js,
and tiny inline SVG sparklines (no script: a page shows them even before Plotly loads).

A job builds `plotly.graph_objects` figures (or uses the shortcuts below) and passes them to its
template as `Chart`s; the `chart` macro in `_macros.html.j2` places them. No CDN: the page loads
`assets/plotly.min.js` copied next to the reports, so pages work offline from file://.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
import plotly.io
from markupsafe import Markup, escape

_ids = itertools.count()
# The pages' look, as Plotly's default: a figure picks it up when it is serialised. Passing it to
# every figure instead (`template=`) validates and copies the whole template each time: 0.18 s per
# chart against 0.04 s, about five seconds of every night.
plotly.io.templates.default = "plotly_white"


@dataclass(frozen=True)
class Chart:
    """A figure ready for a template: a unique element id and the figure as escaped JSON."""

    id: str
    title: str
    json: str


def chart(fig: go.Figure, title: str = "") -> Chart:
    """Wrap a Plotly figure for a page. The JSON is safe inside <script> (no `</` sequences)."""
    fig.update_layout(
        title=title or None,
        margin=dict(l=50, r=20, t=40 if title else 20, b=40),
        height=340,
        legend=dict(orientation="h", y=-0.2),
    )
    text = fig.to_json().replace("</", "<\\/").replace("<!--", "<\\!--")
    return Chart(id=f"chart-{next(_ids)}", title=title, json=text)


def line(x: Sequence, series: dict[str, Sequence], title: str = "", y_title: str = "") -> Chart:
    """A line chart with one trace per named series over a shared x."""
    fig = go.Figure([go.Scatter(x=list(x), y=list(y), mode="lines", name=n) for n, y in series.items()])
    fig.update_yaxes(title=y_title or None)
    return chart(fig, title)


def bar(x: Sequence, series: dict[str, Sequence], title: str = "", y_title: str = "",
        errors: dict[str, Sequence] | None = None) -> Chart:
    """A grouped bar chart; `errors` adds ± error bars (margins of error) per series."""
    errors = errors or {}
    fig = go.Figure(
        [
            go.Bar(x=list(x), y=list(y), name=n,
                   error_y=dict(type="data", array=list(errors[n])) if n in errors else None)
            for n, y in series.items()
        ]
    )
    fig.update_layout(barmode="group")
    fig.update_yaxes(title=y_title or None)
    return chart(fig, title)


def band(x: Sequence, mean: Sequence, lower: Sequence, upper: Sequence, title: str = "",
         history_x: Sequence | None = None, history_y: Sequence | None = None, name: str = "forecast") -> Chart:
    """A forecast with a shaded interval, optionally after its history."""
    traces = []
    if history_x is not None and history_y is not None:
        traces.append(go.Scatter(x=list(history_x), y=list(history_y), mode="lines", name="actual"))
    traces += [
        go.Scatter(x=list(x), y=list(upper), mode="lines", line=dict(width=0), showlegend=False, hoverinfo="skip"),
        go.Scatter(x=list(x), y=list(lower), mode="lines", line=dict(width=0), fill="tonexty",
                   fillcolor="rgba(31,119,180,0.2)", name="interval"),
        go.Scatter(x=list(x), y=list(mean), mode="lines", name=name),
    ]
    return chart(go.Figure(traces), title)


def scatter(x: Sequence, y: Sequence, title: str = "", x_title: str = "", y_title: str = "") -> Chart:
    """A scatter plot of two measures."""
    fig = go.Figure([go.Scatter(x=list(x), y=list(y), mode="markers", marker=dict(size=4, opacity=0.5))])
    fig.update_xaxes(title=x_title or None)
    fig.update_yaxes(title=y_title or None)
    return chart(fig, title)


def sparkline(x: Sequence[float], y: Sequence[float], label: str = "", width: int = 96, height: int = 20) -> Markup:
    """A small inline SVG line of `y` over `x` (numbers; x spaced as given), tonight's point marked.

    Only numbers go into the markup; the label is escaped into the tooltip, so the result is safe to
    place unescaped in a template.
    """
    pad = 2.5  # room for the end dot inside the box
    x0, y0 = min(x), min(y)
    sx = (width - 2 * pad) / ((max(x) - x0) or 1)
    sy = (height - 2 * pad) / ((max(y) - y0) or 1)
    flat = max(y) == y0  # a constant series is drawn along the middle, not the floor
    pts = [(pad + (a - x0) * sx, height / 2 if flat else height - pad - (b - y0) * sy) for a, b in zip(x, y, strict=True)]
    line = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
    return Markup(
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>'
        f'<polyline points="{line}" fill="none" stroke="currentColor" stroke-width="1.5"/>'
        f'<circle cx="{pts[-1][0]:.1f}" cy="{pts[-1][1]:.1f}" r="2.2" fill="currentColor"/></svg>'
    )
