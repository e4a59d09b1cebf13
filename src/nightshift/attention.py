"""What needs a look after a night, in sentences, first on the night page and in the index.

Read from the night's manifest, so a page written months ago and a page written tonight say the
same: a job that failed or did not run (and why), each job's warnings (a learned model that lost
to its baseline, interval coverage off, drift, a privacy release refused, ...), stock at risk, and
tables whose drop for the date was unusable or had more than `QUARANTINE_SHARE` of its rows
quarantined.
"""

from __future__ import annotations

from typing import Any

QUARANTINE_SHARE = 0.05


def needs_a_look(manifest: dict[str, Any]) -> list[dict[str, str]]:
    """Each item: `text` (a sentence) and `link` (the page or section that explains it)."""
    items = []
    for job, j in manifest["jobs"].items():
        page = f"{job}.html" if has_page(job, j) else "#jobs"
        if j["status"] == "failed":
            where = f" (full traceback in {j['log']})" if j.get("log") else ""
            items.append({"text": f"{job} failed: {j.get('error')}{where}", "link": page})
        elif j["status"] == "skipped":
            items.append({"text": f"{job} did not run: {j.get('error')}", "link": "#quality"})
        items += [{"text": f"{job}: {w}", "link": page} for w in j.get("warnings", [])]
        at_risk = (j.get("summary") or {}).get("skus_at_risk")
        if at_risk:
            items.append({"text": f"{job}: {at_risk} warehouse × SKU may run out of stock before an order "
                                  "placed tonight arrives", "link": page})
    for table, t in manifest.get("inputs", {}).items():
        read, bad = t.get("day_rows_read") or 0, t.get("day_rows_quarantined") or 0
        if t.get("problem"):
            items.append({"text": t["problem"], "link": "#quality"})
        elif read and bad / read > QUARANTINE_SHARE:
            items.append({"text": f"table {table}: {bad / read:.0%} of the rows delivered for {manifest['run_date']} "
                                  f"were quarantined ({bad:,} of {read:,})", "link": "#quality"})
    return items


def has_page(job: str, record: dict[str, Any]) -> bool:
    """Whether the night has a page for the job: its report, the last good one, or the page of its failure."""
    return (record["status"] in ("success", "reused") or bool(record.get("stale_from"))
            or f"{job}.html" in (record.get("outputs") or []))
