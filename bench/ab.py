"""A/B: the wall time and CPU of `preflight run` at one size, this checkout against another revision, interleaved.

    .venv/bin/python bench/ab.py 29bf0a8                 # 100 services, 8 runs of each
    .venv/bin/python bench/ab.py HEAD~3 --services 1 --runs 12
    .venv/bin/python bench/ab.py 31711a6 --own-simulators     # each build against a simulator of its own code

This machine's speed drifts by up to a factor of two within an hour, so two figures taken minutes apart compare
badly. Here the two builds take turns, and the medians are printed side by side: wall time, the CPU of the run (the
main process and its SDK worker) and, with --own-simulators, the simulator's CPU per run. The other revision
is checked out into a temporary git worktree and imported through PYTHONPATH; it runs with this checkout's
virtual environment, so a revision that needs other dependencies is not comparable this way.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import PREFLIGHT_MODULE, ROOT, Simulator, run_child

SIZES = {1: (1, 1), 10: (2, 2), 100: (10, 4)}  # services: (targets, resource groups), as bench/run.py uses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revision", help="the git revision to compare this checkout with")
    parser.add_argument("--services", type=int, choices=sorted(SIZES), default=100)
    parser.add_argument("--runs", type=int, default=8, help="runs of each build (default 8)")
    parser.add_argument("--own-simulators", action="store_true",
                        help="each build runs against a simulator of its own code (default: both against this "
                             "checkout's), so that a change to the simulator shows too")
    args = parser.parse_args(argv)
    targets, groups = SIZES[args.services]
    sizes = ("--services", str(args.services), "--targets", str(targets), "--resource-groups", str(groups),
             "--latency-ms", "100", "--dns-latency-ms", "20")
    with tempfile.TemporaryDirectory() as directory:
        other = Path(directory) / "other"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(other), args.revision],
                       check=True)
        builds = {args.revision: other, "this checkout": ROOT}
        simulators: dict[str, Simulator] = {}
        try:
            for name, path in builds.items():
                if args.own_simulators or not simulators:
                    folder = Path(directory) / f"sim-{len(simulators)}"
                    folder.mkdir()
                    simulators[name] = Simulator(folder, *sizes, cwd=path, env={**os.environ, "PYTHONPATH": str(path)})
                else:
                    simulators[name] = next(iter(simulators.values()))
            figures: dict[str, dict[str, list[float]]] = {name: {"wall": [], "run": [], "sim": []} for name in builds}
            for turn in range(args.runs + 1):  # the first turn warms the caches and is not counted
                for name, path in builds.items():
                    simulator = simulators[name]
                    argv_run = [*PREFLIGHT_MODULE, "run", "-c", str(simulator.config), "--report-dir",
                                str(Path(directory) / "r"), "--format", "json"]
                    sim_before, run_before = simulator.cpu_seconds(), _children_cpu()
                    # From the build's own directory: the SDK worker starts as `python -m`, which imports from there.
                    wall, code, _, out = run_child(argv_run, {**simulator.environ(), "PYTHONPATH": str(path)},
                                                   cwd=path)
                    if code not in (0, 1):
                        raise SystemExit(f"{name}: preflight run exited {code}: {out[:300]}")
                    time.sleep(0.2)  # the simulator's last answers and closed connections
                    sim_after = simulator.cpu_seconds()
                    if turn:
                        figures[name]["wall"].append(wall * 1000)
                        figures[name]["run"].append((_children_cpu() - run_before) * 1000)
                        if sim_before is not None and sim_after is not None:
                            figures[name]["sim"].append((sim_after - sim_before) * 1000)
        finally:
            for simulator in {id(s): s for s in simulators.values()}.values():
                simulator.stop()
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)], check=False)
    which = "each against its own simulator" if args.own_simulators else "against this checkout's simulator"
    print(f"preflight run, {args.services} service(s), {args.runs} runs of each, taking turns {which} "
          f"({os.cpu_count()} cores); CPU of the run is the main process and the SDK worker together")
    for name, values in figures.items():
        simulator_cpu = (f"   simulator CPU {statistics.median(values['sim']):6.0f} ms" if values["sim"] else "")
        print(f"  {name:<20} median {statistics.median(values['wall']):7.0f} ms   min {min(values['wall']):7.0f} ms"
              f"   run CPU {statistics.median(values['run']):6.0f} ms{simulator_cpu}")
    return 0


def _children_cpu() -> float:
    """CPU seconds of this process's finished children, their own finished children included (the SDK worker)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    sys.exit(main())
