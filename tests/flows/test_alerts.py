"""Failure alerts: a webhook received by a local HTTP server, a command, and failures that never raise."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from nightshift import alerts
from nightshift.settings import load_settings

RESULT = {"run_date": "2026-03-01", "status": "partial", "report": "/r/2026-03-01/index.html",
          "jobs": {"loans": {"status": "success", "error": None},
                   "sales": {"status": "failed", "error": "OSError: disk full"}}}


@pytest.fixture
def receiver():
    """A webhook receiver on 127.0.0.1; yields (url, received bodies, set status code)."""
    got: list[dict] = []
    code = {"status": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append({"path": self.path, "type": self.headers["Content-Type"], "json": json.loads(body)})
            self.send_response(code["status"])
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *a) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", got, code
    server.shutdown()
    server.server_close()


def test_webhook_gets_the_failed_night(home, receiver) -> None:
    url, got, _ = receiver
    s = load_settings(alert_webhook=url)
    assert alerts.on_result(s, RESULT, trigger="schedule") == []
    assert len(got) == 1 and got[0]["path"] == "/hook" and got[0]["type"] == "application/json"
    body = got[0]["json"]
    assert body["run_date"] == "2026-03-01" and body["status"] == "partial" and body["trigger"] == "schedule"
    assert body["failed_jobs"] == {"sales": "OSError: disk full"}  # only the job that failed


def test_no_alert_for_a_good_night(home, receiver) -> None:
    url, got, _ = receiver
    s = load_settings(alert_webhook=url)
    assert alerts.on_result(s, {**RESULT, "status": "success"}) == []
    assert got == []


def test_command_gets_json_on_stdin_and_variables(home, tmp_path) -> None:
    out = tmp_path / "alert.json"
    script = tmp_path / "alert.py"
    script.write_text(
        "import json, os, sys\n"
        f"data = json.load(sys.stdin)\ndata['env'] = os.environ['NIGHTSHIFT_ALERT_JOBS']\n"
        f"open({str(out)!r}, 'w').write(json.dumps(data))\n"
    )
    s = load_settings(alert_command=f"{sys.executable} {script}")
    assert alerts.on_result(s, RESULT) == []
    data = json.loads(out.read_text())
    assert data["status"] == "partial" and data["env"] == "sales"


def test_shell_command_and_both_channels(home, tmp_path, receiver) -> None:
    url, got, _ = receiver
    flag = tmp_path / "flag"
    s = load_settings(alert_command=f"echo \"$NIGHTSHIFT_ALERT_RUN_DATE\" > {flag}", alert_webhook=url)
    assert alerts.on_result(s, {**RESULT, "status": "failed"}) == []
    assert flag.read_text().strip() == "2026-03-01" and len(got) == 1


def test_broken_channels_are_reported_never_raised(home, receiver) -> None:
    url, got, code = receiver
    code["status"] = 500
    s = load_settings(alert_command="/nonexistent/alert-tool --now", alert_webhook=url)
    problems = alerts.on_result(s, RESULT)
    assert len(problems) == 2
    assert "alert command" in problems[0] and "answered 500" in problems[1]
    dead = load_settings(alert_command="false", alert_webhook="http://127.0.0.1:9/nothing-listens")
    problems = alerts.notify(dead, alerts.event_from_result(RESULT))
    assert any("exited 1" in p for p in problems) and any("failed" in p for p in problems)


def test_slow_command_times_out(home) -> None:
    msg = alerts.run_command(f"{sys.executable} -c 'import time; time.sleep(5)'", {"run_date": "x"}, timeout_s=0.5)
    assert msg is not None and "Timeout" in msg


def test_a_night_that_raises_is_alerted_from_the_cli_and_from_the_backfill(home, receiver, monkeypatch) -> None:
    """Not only a night that ends partial or failed: one that raises (a broken warehouse, ingest or
    publishing failing) alerts too, as the Prefect flow's failure hook does."""
    from typer.testing import CliRunner

    from nightshift import cli, night

    url, got, _ = receiver
    monkeypatch.setenv("NIGHTSHIFT_ALERT_WEBHOOK", url)
    (home / "data" / "landing" / "sales" / "date=2026-03-01").mkdir(parents=True)  # not empty: no demo data

    def raising(settings, run_date, *args, **kwargs):
        raise OSError(f"disk full while loading {run_date}")

    monkeypatch.setattr(night, "run_night", raising)
    runner = CliRunner()
    result = runner.invoke(cli.app, ["run", "--date", "2026-03-01"])
    assert isinstance(result.exception, OSError)  # `main` turns it into one line; the alert went first
    assert len(got) == 1
    assert {k: got[0]["json"][k] for k in ("run_date", "status", "trigger", "error")} == {
        "run_date": "2026-03-01", "status": "failed", "trigger": "manual",
        "error": "OSError: disk full while loading 2026-03-01"}
    runner.invoke(cli.app, ["backfill", "--start", "2026-03-01", "--end", "2026-03-02", "--mode", "all"])
    assert [(g["json"]["run_date"], g["json"]["trigger"]) for g in got[1:]] == [
        ("2026-03-01", "backfill"), ("2026-03-02", "backfill")]
