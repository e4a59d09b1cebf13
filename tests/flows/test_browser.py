"""The reports in a real browser: headless Chromium (Debian's `chromium`), network off.

Opens `reports/index.html`, the night's page and every job page of a demo night; on each: no
console error, no failed load, every `.plot` chart has an SVG, every local link resolves. A
screenshot of each page goes to $CI_ARTIFACTS (or reports/screenshots/). The browser is driven over
the DevTools protocol on a pipe (`--remote-debugging-pipe`), so no driver package is needed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

CHROMIUM = "/usr/bin/chromium"
PAGE_WIDTH = 1400  # the reader's window: no page may scroll sideways at it
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent: apt-get install -y chromium"),
]


class Browser:
    """A headless Chromium spoken to over the DevTools pipe (fd 3 in, fd 4 out; NUL-separated JSON)."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="ns-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def fds() -> None:  # in the child: its ends of the pipes become fds 3 and 4
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)  # so that neither is clobbered by the other
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--disable-gpu", "--no-sandbox", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
             f"--user-data-dir={self.profile}", "--remote-debugging-pipe", f"--window-size={PAGE_WIDTH},1600",
             # network off: every host resolves to nothing and any proxied request goes nowhere
             "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9", "about:blank"],
            preexec_fn=fds, pass_fds=(3, 4, to_chrome_r, from_chrome_w), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, session: bool = False, timeout: float = 60, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._read(deadline))

    def open(self, url: str) -> list[str]:
        """Load `url`; the console errors, exceptions and failed loads it caused."""
        self.events.clear()
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")
        time.sleep(0.5)
        self.call("Runtime.evaluate", session=True, expression="1")  # drain events that arrived meanwhile
        problems = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                problems.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif m == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                problems.append("exception: " + d.get("exception", {}).get("description", d.get("text", "")))
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                problems.append(f"log: {p['entry']['text']} {p['entry'].get('url', '')}")
            elif m == "Network.loadingFailed":
                problems.append(f"failed load: {p.get('errorText')} ({p.get('type')})")
        return problems

    def js(self, expression: str):
        r = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        return r["result"].get("value")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A demo night of every job, published as `make run` would (without starting Prefect)."""
    from datetime import date

    from nightshift import demo, ingest, night, publish
    from nightshift.jobs import JOBS
    from nightshift.settings import load_settings
    from nightshift.warehouse import Warehouse

    d = date(2026, 3, 1)
    home = tmp_path_factory.mktemp("browser_home")
    s = load_settings(home=home, demo_size="tiny")
    demo.generate(s.landing_dir, end=d, size="tiny", seed=7)
    with Warehouse(s.warehouse_path) as wh:
        loads = ingest.ingest(s, wh, d)
        build = publish.new_build_dir(s.reports_dir, d.isoformat())
        outcomes = []
        for job in JOBS:
            try:
                outcomes.append(night.run_job(s, wh, d, job, build, loads))
            except Exception as e:
                outcomes.append(night.failed(job, e))
        night.publish_night(s, d, build, outcomes, night.new_attempt("test"),
                            night.table_fingerprints(wh, d, list(loads)), night.data_quality(wh, d, loads))
    _partial_and_failed_nights(s, d)
    return s.reports_dir


def _partial_and_failed_nights(settings, d) -> None:
    """The night before: energy's drop is gone (skipped), inventory runs: partial. Two nights before:
    only energy is asked for, and its drop is gone: failed."""
    from datetime import timedelta

    from nightshift.night import run_night

    for day in (d - timedelta(days=1), d - timedelta(days=2)):
        shutil.rmtree(settings.landing_dir / "energy" / f"date={day}")
    run_night(settings, d - timedelta(days=1), ["inventory", "energy"])
    run_night(settings, d - timedelta(days=2), ["energy"])


def _local_target(href: str) -> Path | None:
    u = urlparse(href)
    return Path(unquote(u.path)) if u.scheme == "file" else None


def test_every_page_renders_cleanly_offline(published: Path) -> None:
    from nightshift.jobs import JOBS

    night_dir = published / "2026-03-01"
    manifest = json.loads((night_dir / "manifest.json").read_text())
    failed = {j: v["error"] for j, v in manifest["jobs"].items() if v["status"] not in ("success", "reused")}
    assert not failed, f"jobs failed, so their pages can't be checked: {failed}"
    pages = [published / "index.html", night_dir / "index.html", night_dir / "shareable" / "index.html",
             published / "2026-02-28" / "index.html", published / "2026-02-27" / "index.html",
             *(night_dir / f"{j}.html" for j in JOBS)]
    shots = Path(os.environ.get("CI_ARTIFACTS") or published / "screenshots")
    browser = Browser()
    report = {}
    try:
        for page in pages:
            assert page.exists(), page
            problems = browser.open(page.as_uri())
            charts = browser.js("[...document.querySelectorAll('div.plot')].map(d => !!d.querySelector('svg'))")
            links = browser.js("[...document.querySelectorAll('a[href]')].map(a => a.href)")
            broken = [h for h in links if (t := _local_target(h)) is not None and not t.exists()]
            # blob: links are the CSV downloads, built inside the page
            external = [h for h in links if not h.startswith(("file:", "#", "about:", "blob:"))]
            name = page.relative_to(published).as_posix().replace("/", "_").removesuffix(".html")
            browser.screenshot(shots / f"{name}.png")
            report[name] = {"problems": problems, "charts": charts, "broken": broken, "external": external,
                            "overflow": browser.js("document.documentElement.scrollWidth - window.innerWidth"),
                            "text": browser.js("document.body.innerText"),
                            "rows": browser.js("[...document.querySelectorAll('table')].map(t => "
                                               "[...t.rows].map(r => [...r.cells].reduce((n, c) => n + c.colSpan, 0)))")}
    finally:
        browser.close()
    for name, r in report.items():
        assert r["problems"] == [], f"{name}: {r['problems']}"
        assert r["broken"] == [], f"{name}: links to missing files {r['broken']}"
        assert r["external"] == [], f"{name}: links leave the report {r['external']}"
        assert r["overflow"] <= 0, f"{name}: {r['overflow']} px wider than a 1,400 px window"
        assert all(len(set(t)) <= 1 for t in r["rows"]), f"{name}: a table whose rows have different widths"
        if "shareable" not in name:  # the shareable tier shows values exactly as stored, on purpose
            whole = re.findall(r".{0,20}\b\d+\.000\b", r["text"])
            assert not whole, f"{name}: whole numbers shown with decimals: {whole[:5]}"
    for job in JOBS:
        assert all(report[f"2026-03-01_{job}"]["charts"]), f"the {job} page has a chart without SVG"
        assert report[f"2026-03-01_{job}"]["charts"], f"the {job} page has no chart"
    # each page leads with its answer; how it was computed is folded below it
    for job, answer, folded in (("sales", "The outlook per store and product", "How tonight's forecasts were made"),
                                ("energy", "Peak load per region on", "How the candidates were trained"),
                                ("inventory", "Order list for tomorrow", "Tonight in numbers")):
        text = report[f"2026-03-01_{job}"]["text"]
        assert answer in text and folded in text and text.index(answer) < text.index(folded), job
    partial, failed = report["2026-02-28_index"]["text"], report["2026-02-27_index"]["text"]
    assert "Needs a look" in partial and "energy did not run: table energy: no data for 2026-02-28" in partial
    assert "energy did not run" in failed
    assert "2026-02-28" in report["index"]["text"] and "partial" in report["index"]["text"]
    assert all((shots / f"{n}.png").stat().st_size > 5000 for n in report)


def test_the_checks_catch_a_broken_page(tmp_path: Path) -> None:
    """A control: console errors, exceptions, network use and an empty chart are all seen."""
    page = tmp_path / "broken.html"
    page.write_text('<html><body><div class="plot"></div><script>console.error("boom"); nope();</script>'
                    '<img src="http://example.com/x.png"><a href="missing.html">x</a></body></html>')
    browser = Browser()
    try:
        problems = browser.open(page.as_uri())
        charts = browser.js("[...document.querySelectorAll('div.plot')].map(d => !!d.querySelector('svg'))")
        links = browser.js("[...document.querySelectorAll('a[href]')].map(a => a.href)")
    finally:
        browser.close()
    assert any("boom" in p for p in problems) and any("nope is not defined" in p for p in problems)
    assert any("failed load" in p for p in problems)  # the network is off
    assert charts == [False]
    assert [h for h in links if not _local_target(h).exists()] == [(tmp_path / "missing.html").as_uri()]
