"""Failure alerts: run `alert_command` and/or POST JSON to `alert_webhook` when a night does not succeed.

An alert must never make a bad night worse: every error here is caught, logged and returned.
The command gets the event as JSON on stdin and as NIGHTSHIFT_ALERT_* variables; it runs
without a shell when it has no shell syntax, with a time limit either way.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
from typing import Any

from nightshift.settings import Settings

log = logging.getLogger(__name__)
TIMEOUT_S = 10.0
_SHELL_CHARS = set("|&;<>()$`\\\"'*?[#~=%")


def event_from_result(result: dict[str, Any], trigger: str = "manual") -> dict[str, Any]:
    """The alert payload for one night's result (as the nightly flow returns it)."""
    jobs = result.get("jobs") or {}
    failed = {j: (v.get("error") or v.get("status")) for j, v in jobs.items()
              if v.get("status") not in ("success", "reused")}
    return {
        "source": "nightshift",
        "run_date": result.get("run_date"),
        "status": result.get("status", "failed"),
        "trigger": trigger,
        "failed_jobs": failed,
        "error": result.get("error"),
        "report": result.get("report"),
    }


def _env(event: dict[str, Any]) -> dict[str, str]:
    return {
        **os.environ,
        "NIGHTSHIFT_ALERT_RUN_DATE": str(event.get("run_date") or ""),
        "NIGHTSHIFT_ALERT_STATUS": str(event.get("status") or ""),
        "NIGHTSHIFT_ALERT_JOBS": ",".join(event.get("failed_jobs") or {}),
        "NIGHTSHIFT_ALERT_REPORT": str(event.get("report") or ""),
    }


def run_command(command: str, event: dict[str, Any], timeout_s: float = TIMEOUT_S) -> str | None:
    """Run the alert command with the event; an error message, or None when it exited 0."""
    shell = any(ch in _SHELL_CHARS for ch in command)
    try:
        args: Any = command if shell else shlex.split(command)
        done = subprocess.run(args, shell=shell, input=json.dumps(event, default=str), text=True,
                              env=_env(event), capture_output=True, timeout=timeout_s, check=False)
    except Exception as e:  # not found, timeout, bad quoting: report, never raise
        return f"alert command {command!r} failed: {type(e).__name__}: {e}"
    if done.returncode != 0:
        return f"alert command {command!r} exited {done.returncode}: {done.stderr.strip()[:300]}"
    return None


def post_webhook(url: str, event: dict[str, Any], timeout_s: float = TIMEOUT_S) -> str | None:
    """POST the event as JSON to `url`; an error message, or None on a 2xx answer."""
    try:
        import httpx

        r = httpx.post(url, json=json.loads(json.dumps(event, default=str)), timeout=timeout_s)
    except Exception as e:
        return f"alert webhook {url} failed: {type(e).__name__}: {e}"
    if not r.is_success:
        return f"alert webhook {url} answered {r.status_code}: {r.text[:300]}"
    return None


def notify(settings: Settings, event: dict[str, Any]) -> list[str]:
    """Send one failure alert through every configured channel; the problems met (never raises)."""
    problems: list[str] = []
    try:
        if settings.alert_command:
            problems.append(run_command(settings.alert_command, event) or "")
        if settings.alert_webhook:
            problems.append(post_webhook(settings.alert_webhook, event) or "")
    except Exception as e:  # belt and braces: an alert must not fail the night
        problems.append(f"alert failed: {type(e).__name__}: {e}")
    problems = [p for p in problems if p]
    for p in problems:
        log.warning(p)
    return problems


def on_result(settings: Settings, result: dict[str, Any], trigger: str = "manual") -> list[str]:
    """Alert when a night's result is not a success; nothing otherwise."""
    if result.get("status") == "success":
        return []
    return notify(settings, event_from_result(result, trigger))


def stopped_event(run_date: Any, trigger: str, error: str) -> dict[str, Any]:
    """The alert payload for a night that stopped with an error instead of finishing."""
    return {"source": "nightshift", "run_date": str(run_date or ""), "status": "failed", "trigger": trigger,
            "failed_jobs": {}, "error": error, "report": None}


def on_error(settings: Settings, run_date: Any, exc: BaseException, trigger: str = "manual") -> list[str]:
    """Alert for a night that raised instead of finishing (the warehouse broken, ingest or publishing
    failed, no data for the date): the CLI's and the backfill's counterpart of the Prefect hook below."""
    return notify(settings, stopped_event(run_date, trigger, f"{type(exc).__name__}: {exc}"))


def prefect_on_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """A Prefect `on_failure`/`on_crashed` hook: alert for a flow that raised or crashed."""
    try:
        from nightshift.settings import load_settings

        params = getattr(flow_run, "parameters", {}) or {}
        notify(load_settings(), stopped_event(params.get("run_date"), params.get("trigger", "manual"),
                                              f"{getattr(state, 'name', 'Failed')}: {getattr(state, 'message', '')}"))
    except Exception as e:
        log.warning("alert hook failed: %s", e)
