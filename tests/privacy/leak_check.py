"""The leak check of the shareable tier: every number there must trace to a stored DP release, an
output about non-people, or a declared constant; anything else is a leak.

`untraced(settings, run_date)` returns the problems (empty when the tier is clean):
- a file in `reports/<D>/shareable/` that its manifest does not declare;
- a DP table that differs from the release stored in the privacy ledger under its id;
- a post-processed table that differs from its declared function of that stored release;
- a non-person table from a job that did not declare that output shareable;
- a column naming a person anywhere in the tier;
- a number in the page that is in none of the traced tables and is no declared constant.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import polars as pl

from nightshift import __version__
from nightshift.jobs import JOBS
from nightshift.privacy import ledger
from nightshift.privacy.store import Store
from nightshift.shareable import PREVIEW_ROWS, post_processing

PERSON_COLUMNS = {"user_id", "applicant_id", "application_id", "customer", "customer_id", "meter_id", "event_id"}
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?(?: UTC)?)?")


class _Text(HTMLParser):
    """The page's visible text and its attribute values (a number can hide in a title= too)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip += tag in ("script", "style")
        self.parts += [v for k, v in attrs if v and k not in ("href", "src", "class", "id", "rel", "charset",
                                                               "name", "content", "lang")]

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def untraced(settings, run_date) -> list[str]:
    """Every leak in the night's shareable tier (see the module)."""
    root = settings.reports_dir / run_date.isoformat() / "shareable"
    manifest = json.loads((root / "manifest.json").read_text())
    store = Store.for_home(settings.data_dir, settings.reports_dir)
    problems, allowed = [], set()
    declared = {e["file"] for entries in manifest["files"].values() for e in entries}
    for path in root.rglob("*.parquet"):
        if str(path.relative_to(root)) not in declared:
            problems.append(f"{path.relative_to(root)}: not declared in the shareable manifest")
    for job, entries in manifest["files"].items():
        for entry in entries:
            frame = pl.read_parquet(root / entry["file"])
            problems += _trace(job, entry, frame, store)
            # A value's digits as the page shows them (a product id p0001, a band 10-19, a header lower_90).
            for value in [*frame.columns, *(v for c in frame.columns for v in frame[c].to_list() if v is not None)]:
                allowed |= set(NUMBER.findall(str(value)))
            allowed.add(str(frame.height))  # "first 200 of N rows": a DP grid's size is declared, not data
    allowed |= _constants(manifest)
    page = _Text()
    page.feed((root / "index.html").read_text())
    text = DATE.sub(" ", " ".join(page.parts))
    problems += [f"index.html: the number {n} traces to no release, non-person output or constant"
                 for n in sorted(set(NUMBER.findall(text)) - allowed)]
    return problems


def _trace(job: str, entry: dict, frame: pl.DataFrame, store: Store) -> list[str]:
    people = PERSON_COLUMNS & set(frame.columns)
    problems = [f"{entry['file']}: columns naming people: {', '.join(sorted(people))}"] if people else []
    if entry["kind"] == "dp":
        stored = ledger.find(store, entry["release_id"])
        if stored is None or not stored.table.equals(frame):
            problems.append(f"{entry['file']}: not the release {entry['release_id']} stored in the privacy ledger")
    elif entry["kind"] == "dp-post":
        stored = ledger.find(store, entry["release_id"])
        derive = post_processing(entry["release"]).get(entry["output"])
        if stored is None or derive is None or not derive(stored.table).equals(frame):
            problems.append(f"{entry['file']}: not the declared post-processing {entry['output']!r} of the release "
                            f"{entry['release_id']} stored in the privacy ledger")
    elif entry["kind"] != "non-person" or entry["output"] not in JOBS[job].shareable:
        problems.append(f"{entry['file']}: {job} does not declare {entry.get('output')!r} a non-person output")
    return problems


def _constants(manifest: dict) -> set[str]:
    """Numbers the page may show that are not data: the page's preview size, the digits of file
    names and release ids, and the version."""
    constants = set(NUMBER.findall(__version__)) | {str(PREVIEW_ROWS)}
    for entries in manifest["files"].values():
        for e in entries:
            release = e.get("release_id") or ""
            constants |= set(NUMBER.findall(e["file"])) | set(NUMBER.findall(release)) | set(NUMBER.findall(release[:12]))
    return constants
