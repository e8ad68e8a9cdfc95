"""A/B: the wall time of `preflight run` at one size, this checkout against another revision, interleaved.

    .venv/bin/python bench/ab.py 29bf0a8                 # 100 services, 8 runs of each
    .venv/bin/python bench/ab.py HEAD~3 --services 1 --runs 12

This machine's speed drifts by 15 to 30% within an hour, so two figures taken minutes apart compare badly. Here
the two builds take turns against one simulator, and the medians are printed side by side. The other revision
is checked out into a temporary git worktree and imported through PYTHONPATH; it runs with this checkout's
virtual environment, so a revision that needs other dependencies is not comparable this way.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import PREFLIGHT, ROOT, Simulator, run_child

SIZES = {1: (1, 1), 10: (2, 2), 100: (10, 4)}  # services: (targets, resource groups), as bench/run.py uses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revision", help="the git revision to compare this checkout with")
    parser.add_argument("--services", type=int, choices=sorted(SIZES), default=100)
    parser.add_argument("--runs", type=int, default=8, help="runs of each build (default 8)")
    args = parser.parse_args(argv)
    targets, groups = SIZES[args.services]
    with tempfile.TemporaryDirectory() as directory:
        other = Path(directory) / "other"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(other), args.revision],
                       check=True)
        simulator = Simulator(Path(directory), "--services", str(args.services), "--targets", str(targets),
                              "--resource-groups", str(groups), "--latency-ms", "100", "--dns-latency-ms", "20")
        try:
            env = simulator.environ()
            argv_run = [*PREFLIGHT, "run", "-c", str(simulator.config), "--report-dir", str(Path(directory) / "r"),
                        "--format", "json"]
            builds = {args.revision: str(other), "this checkout": str(ROOT)}
            walls: dict[str, list[float]] = {name: [] for name in builds}
            for turn in range(args.runs + 1):  # the first turn warms the caches and is not counted
                for name, path in builds.items():
                    # From the build's own directory: the SDK worker starts as `python -m`, which imports from there.
                    wall, code, _, out = run_child(argv_run, {**env, "PYTHONPATH": path}, cwd=Path(path))
                    if code not in (0, 1):
                        raise SystemExit(f"{name}: preflight run exited {code}: {out[:300]}")
                    if turn:
                        walls[name].append(wall * 1000)
        finally:
            simulator.stop()
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)], check=False)
    print(f"preflight run, {args.services} service(s), {args.runs} runs of each, taking turns "
          f"({os.cpu_count()} cores)")
    for name, values in walls.items():
        print(f"  {name:<20} median {statistics.median(values):7.0f} ms   min {min(values):7.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
