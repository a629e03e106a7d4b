#!/usr/bin/env python3
"""Render a page in headless Chromium with the network cut off, the way tests/docs/test_browser.py does.

    python scripts/chromium_render.py _build/html/book/intro.html --screenshot out.png

One Chromium run gives: the DOM after scripts ran (``--dump-dom``, after
``--virtual-time-budget`` ms of virtual time), a screenshot, and a NetLog. Every host name
resolves to nothing (``--host-resolver-rules``), so a page that needs a CDN renders without it;
the NetLog still records each http(s) request the page *tried*, which is how external
requests are caught. Chromium's own background requests (update checks, sign-in) carry the
initiator "not an origin" and are left out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--mute-audio",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]


def find_chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"),
                      shutil.which("chromium-browser"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass
class Render:
    dom: str
    page_requests: list[str] = field(default_factory=list)  # http(s)/ws URLs the page asked for
    stderr: str = ""


def page_requests_from_netlog(path: Path) -> list[str]:
    """URLs of network requests that a page (not the browser itself) started."""
    try:
        log = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, json.JSONDecodeError):
        # Chromium may leave the log unterminated when killed; close it and retry.
        text = path.read_text(encoding="utf-8", errors="replace").rstrip().rstrip(",")
        log = json.loads(text + "]}")
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls = []
    for event in log.get("events", []):
        params = event.get("params") or {}
        url = params.get("url", "")
        if not url or names.get(event["type"]) != "URL_REQUEST_START_JOB":
            continue
        if params.get("initiator") == "not an origin":  # Chromium's own background traffic
            continue
        if url.split(":", 1)[0] in {"http", "https", "ws", "wss"}:
            urls.append(url)
    return sorted(set(urls))


def render(url: str, screenshot: Path | None = None, *, chromium: str | None = None,
           budget_ms: int = 10000, window: str = "1280,2000", timeout_s: int = 90) -> Render:
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("chromium not found (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="apalu-chromium-") as tmp:
        netlog = Path(tmp) / "netlog.json"
        cmd = [chromium, *FLAGS, f"--user-data-dir={tmp}/profile",
               f"--virtual-time-budget={budget_ms}", f"--window-size={window}",
               f"--log-net-log={netlog}"]
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            cmd.append(f"--screenshot={screenshot}")
        cmd += ["--dump-dom", url]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0 or not proc.stdout.strip():
            raise RuntimeError(f"chromium failed ({proc.returncode}) on {url}:\n{proc.stderr[-3000:]}")
        requests = page_requests_from_netlog(netlog) if netlog.exists() else []
        return Render(dom=proc.stdout, page_requests=requests, stderr=proc.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("page", help="an HTML file or a URL")
    ap.add_argument("--screenshot", type=Path)
    ap.add_argument("--dom", type=Path, help="write the rendered DOM here")
    args = ap.parse_args(argv)
    url = args.page if "://" in args.page else Path(args.page).resolve().as_uri()
    result = render(url, args.screenshot)
    if args.dom:
        args.dom.write_text(result.dom, encoding="utf-8")
    print(f"mjx-container elements: {result.dom.count('<mjx-container')}")
    print(f"external requests: {result.page_requests or 'none'}")
    return 1 if result.page_requests else 0


if __name__ == "__main__":
    sys.exit(main())
