"""Benchmarks: wall time against the critical path, start-up, memory and request counts, as ratios."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Measure what an installed tool costs: with its bytecode cache, as pip leaves it.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
BIN = Path(sys.executable).parent
PREFLIGHT = [str(BIN / "preflight")] if (BIN / "preflight").exists() else [sys.executable, "-m", "preflight"]


@dataclass
class Row:
    """One printed figure: what, measured value, target, and whether the target is met."""

    name: str
    value: str
    target: str
    ok: bool
    detail: str = ""


@dataclass
class Bench:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        mark = "ok  " if row.ok else "MISS"
        print(f"  {mark} {row.name:<44} {row.value:>12}   target {row.target:<10} {row.detail}", flush=True)


def run_child(argv: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> tuple[float, int, int, str]:
    """Run a process; return wall seconds, exit code, peak RSS in KiB and stdout."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return wall, process.returncode, usage.ru_maxrss, out.read().decode("utf-8", "replace")


def median_wall(argv: list[str], repeats: int) -> float:
    return statistics.median(run_child(argv)[0] for _ in range(repeats))


def bench_startup(bench: Bench, repeats: int) -> None:
    print(f"\nStart-up (median of {repeats}, side by side)")
    run_child([*PREFLIGHT, "list"])  # warm the bytecode cache once
    baseline = median_wall([sys.executable, "-c", "pass"], repeats)
    for label, argv in (("preflight --version", [*PREFLIGHT, "--version"]),
                        ("preflight list", [*PREFLIGHT, "list"])):
        wall = median_wall(argv, repeats)
        ratio = wall / baseline
        bench.add(Row(f"{label} / python -c pass", f"{ratio:.2f}x", "<= 3.0x", ratio <= 3.0,
                      f"({wall * 1000:.0f} ms vs {baseline * 1000:.0f} ms)"))


class Simulator:
    """`preflight simulate` in a child process, with its config and environment files."""

    def __init__(self, directory: Path, *args: str) -> None:
        self.config = directory / "sim.yaml"
        self.env_file = directory / "sim.env"
        for path in (self.config, self.env_file):
            path.unlink(missing_ok=True)
        self.process = subprocess.Popen([*PREFLIGHT, "simulate", "--config-out", str(self.config), "--env-out",
                                         str(self.env_file), *args], stdout=subprocess.DEVNULL, cwd=ROOT)
        deadline = time.monotonic() + 30
        while not (self.config.exists() and self.env_file.exists()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit("the simulator did not start")
            time.sleep(0.02)

    def environ(self) -> dict[str, str]:
        env = dict(os.environ)
        for line in self.env_file.read_text().splitlines():
            name, _, value = line.partition("=")
            env[name] = value
        env["CI"] = "true"
        return env

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and sizes, under 60 s")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--dns-latency-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    print(f"dw-preflight benchmarks: {' '.join([sys.executable, *sys.argv])}")
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}")
    bench = Bench()
    bench_startup(bench, 10 if args.quick else 20)
    missed = [row for row in bench.rows if not row.ok]
    print(f"\n{len(bench.rows) - len(missed)} of {len(bench.rows)} targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
