"""Report pages: Jinja2 templates (autoescaped), local assets, and the indexes of runs and nights."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from numbers import Number
from pathlib import Path
from typing import Any

import jinja2

from nightshift import __version__
from nightshift.publish import write_text_atomic

STATIC = Path(str(resources.files(__package__) / "static"))  # package data: CSS, JavaScript, Plotly


@cache
def environment() -> jinja2.Environment:
    """The template environment: autoescape on for every template, undefined variables are errors."""
    from nightshift.reporting.charts import sparkline  # charts imports Plotly: only once a page is drawn

    env = jinja2.Environment(
        loader=jinja2.PackageLoader(__package__, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["sparkline"] = sparkline  # numbers in, escaped SVG out (see charts.sparkline)
    env.filters["number"] = number  # the `fmt` macro of _macros.html.j2
    return env


def number(v: Any, digits: int = 3) -> str:
    """The one number formatter of the pages (templates use it as the `fmt` macro): yes/no for booleans,
    thousands separators for whole numbers (a whole float such as 6881.0 included), `digits` decimals
    for the rest, a dash for none; anything else as it is."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, Number):
        return f"{v:,.0f}" if v == round(v, 0) else f"{v:,.{digits}f}"
    return str(v)


def render(template: str, **context: Any) -> str:
    """Render one template with the common page variables filled in."""
    base = {
        "version": __version__,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "warnings": [],
        "selections": {},  # JobResult.selections: the "Which model is used" sections of a job page
        "tier": "team",  # team pages may hold exact figures; see nightshift.shareable
        "shareable_link": "shareable/index.html",
        "run_date": None,
        "root": "..",
        "assets": "../assets",
        "trends": [],  # trends.Trend list: the job's small trends across nights, in base.html.j2
        "job_trends": {},  # the night page: per job, its trends
        "answer": "",  # JobResult.headline: the page's answer in a sentence, first on the page
    }
    return environment().get_template(template).render(**{**base, **context})


def install_assets(reports_dir: Path) -> None:
    """Put the CSS, JS and Plotly bundle next to the reports (once per version), so pages work offline."""
    import plotly

    target = reports_dir / "assets"
    stamp = target / f".version-{__version__}"
    if stamp.exists():
        return
    tmp = reports_dir / ".assets.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(STATIC, tmp)
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", tmp / "plotly.min.js")
    (tmp / stamp.name).touch()
    old = reports_dir / ".assets.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def write_page(path: Path, template: str, **context: Any) -> None:
    """Render a template into `path` atomically."""
    write_text_atomic(render(template, **context), path)
