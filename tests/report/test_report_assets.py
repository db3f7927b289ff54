"""A light report.html: plotly.js once per workspace (``assets/``) instead of 4.8 MB
inside every run's report, with a pinned CDN copy (SRI-checked) as the fallback,
and the self-contained report as an option (``--offline-report``)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from plotly.offline import get_plotlyjs, get_plotlyjs_version

from laptop_agents.cli import main
from laptop_agents.config import load_config
from laptop_agents.exit_codes import ExitCode
from laptop_agents.report import RunWriter, build_report
from laptop_agents.report import html as report_html
from tests.report.test_report import FIELDS, drive

BUNDLED = get_plotlyjs().encode("utf-8")
ASSET = f"plotly-{get_plotlyjs_version()}.min.js"
SRI = "sha384-" + base64.b64encode(hashlib.sha384(BUNDLED).digest()).decode()


def run_in(root: Path, name: str, **kw: str) -> Path:
    run = root / "runs" / name
    w = RunWriter(run, **kw)  # type: ignore[arg-type]
    drive(w, 60)
    return w.finish(FIELDS)


def scripts(html: str) -> list[str]:
    return re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", html)


def test_default_report_shares_one_plotly_per_workspace(tmp_path: Path) -> None:
    a = run_in(tmp_path, "a")
    html = a.read_text(encoding="utf-8")
    assert len(a.read_bytes()) < 200_000  # was ~4.8 MB with plotly inside
    assert BUNDLED[:2000].decode() not in html
    assert scripts(html) == [f"../../assets/{ASSET}"]
    asset = (a.parent / scripts(html)[0]).resolve()
    assert asset == (tmp_path / "assets" / ASSET).resolve()
    assert asset.read_bytes() == BUNDLED
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    assert data["plotly"] == {"src": f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js",
                              "integrity": SRI}
    # a second run reuses the file; a damaged one (a disk that filled up) is written again
    stat = asset.stat()
    run_in(tmp_path, "b")
    assert asset.stat().st_mtime_ns == stat.st_mtime_ns and asset.stat().st_ino == stat.st_ino
    asset.write_bytes(BUNDLED[:1000])
    run_in(tmp_path, "c")
    assert asset.read_bytes() == BUNDLED
    assert not list((tmp_path / "assets").glob("*.tmp"))


def test_offline_report_embeds_plotly(tmp_path: Path) -> None:
    a = run_in(tmp_path, "a", plotly="inline")
    html = a.read_text(encoding="utf-8")
    assert get_plotlyjs() in html and scripts(html) == []
    assert not (tmp_path / "assets").exists()
    assert len(a.read_bytes()) > len(BUNDLED)


def test_cdn_report_writes_no_asset(tmp_path: Path) -> None:
    a = run_in(tmp_path, "a", plotly="cdn")
    html = a.read_text(encoding="utf-8")
    assert scripts(html) == [] and get_plotlyjs()[:2000] not in html
    assert SRI in html and not (tmp_path / "assets").exists()


def test_a_run_dir_outside_a_workspace_gets_the_self_contained_report(tmp_path: Path) -> None:
    run = tmp_path / "somewhere"
    w = RunWriter(run)
    drive(w, 30)
    html = w.finish(FIELDS).read_text(encoding="utf-8")
    assert get_plotlyjs() in html and not (tmp_path / "assets").exists()


def test_report_mode_from_config_and_flag(tmp_path: Path, workspace: Path) -> None:
    assert load_config("paper", environ={}).config.system.report_plotly == "shared"
    assert load_config("paper", environ={"LA_SYSTEM__REPORT_PLOTLY": "inline"}).config.system.report_plotly == "inline"
    assert main(["backtest", "--duration", "30", "--run-id", "light"]) == ExitCode.OK
    assert main(["backtest", "--duration", "30", "--run-id", "heavy", "--offline-report"]) == ExitCode.OK
    light = (workspace / "runs" / "light" / "report.html").stat().st_size
    heavy = (workspace / "runs" / "heavy" / "report.html").stat().st_size
    assert light < 200_000 < len(BUNDLED) < heavy
    assert (workspace / "assets" / ASSET).read_bytes() == BUNDLED
    # `report` rebuilds with the configured mode
    (workspace / "runs" / "heavy" / "report.html").unlink()
    assert main(["report", str(workspace / "runs" / "heavy")]) == ExitCode.OK
    assert (workspace / "runs" / "heavy" / "report.html").stat().st_size < 200_000


NODE = shutil.which("node")

_HARNESS = """
const fs = require('fs');
const [html, mode] = [fs.readFileSync(process.argv[2], 'utf8'), process.argv[3]];
const data = /id="report-data">([\\s\\S]*?)<\\/script>/.exec(html)[1];
const inline = [...html.matchAll(/<script>([\\s\\S]*?)<\\/script>/g)].map(m => m[1]);
const log = [];
const appended = [];
global.document = {
  getElementById: (id) => ({textContent: data}),
  body: {insertAdjacentHTML: (where, text) => log.push('message:' + text)},
  head: {appendChild: (el) => appended.push(el)},
  createElement: (tag) => ({tag}),
};
global.window = global;
if (mode === 'loaded') global.Plotly = {newPlot: (id) => log.push('plot:' + id)};
for (const code of inline) eval(code);
if (mode === 'cdn-ok' || mode === 'cdn-fails') {
  const s = appended[0];
  log.push('script:' + s.src + ' ' + s.integrity + ' ' + s.crossOrigin);
  if (mode === 'cdn-ok') { global.Plotly = {newPlot: (id) => log.push('plot:' + id)}; s.onload(); }
  else s.onerror();
}
console.log(JSON.stringify(log));
"""


@pytest.mark.skipif(NODE is None, reason="node is not installed")
@pytest.mark.parametrize("mode", ["loaded", "cdn-ok", "cdn-fails"])
def test_page_script_draws_or_falls_back_to_the_cdn(tmp_path: Path, mode: str) -> None:
    """The page's own script, run by node with a stub DOM: drawn when the shared
    plotly loaded; else the pinned CDN copy is requested with its SRI hash; else
    one message says how to get an offline report."""
    report = run_in(tmp_path, "a")
    harness = tmp_path / "harness.js"
    harness.write_text(_HARNESS)
    assert NODE is not None
    out = subprocess.run([NODE, str(harness), str(report), mode], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    log = json.loads(out)
    plots = [x for x in log if x.startswith("plot:")]
    if mode == "loaded":
        assert plots == ["plot:price", "plot:equity", "plot:drawdown"]
        return
    assert log[0] == f"script:https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js {SRI} anonymous"
    if mode == "cdn-ok":
        assert plots == ["plot:price", "plot:equity", "plot:drawdown"]
    else:
        assert plots == [] and len(log) == 2 and "offline" in log[1] and "report_plotly" in log[1].lower()


def test_report_sizes_are_measured_not_guessed(tmp_path: Path) -> None:
    """The numbers README quotes: the light report is the data, not the library."""
    light = run_in(tmp_path, "light").stat().st_size
    heavy = run_in(tmp_path, "heavy", plotly="inline").stat().st_size
    assert heavy - light == pytest.approx(len(BUNDLED), rel=0.01)
    assert report_html.PLOTLY_MODES == ("shared", "inline", "cdn")
    assert build_report(tmp_path / "runs" / "light") == tmp_path / "runs" / "light" / "report.html"
