"""Render a report.html to a PNG with headless Chromium, so a person can look at what a ticket will show."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("html", type=Path, help="the report, e.g. reports/report.html")
    parser.add_argument("png", type=Path, help="where the screenshot goes (PNGs stay out of git)")
    parser.add_argument("--size", default="1280,2400", help="window width,height (default 1280,2400)")
    args = parser.parse_args(argv)
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("render_report: no chromium on PATH (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={args.size}",
                                 f"--screenshot={args.png.resolve()}", args.html.resolve().as_uri()],
                                capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not args.png.exists():
        print(f"render_report: chromium failed: {result.stderr[-500:]}", file=sys.stderr)
        return 1
    print(args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
