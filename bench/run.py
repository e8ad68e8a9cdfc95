"""Benchmarks: wall time against the critical path, start-up, memory and request counts, as ratios."""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Measure what an installed tool costs: with its bytecode cache, as pip leaves it.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
BIN = Path(sys.executable).parent
PREFLIGHT = [str(BIN / "preflight")] if (BIN / "preflight").exists() else [sys.executable, "-m", "preflight"]
# For a build imported through PYTHONPATH (bench/ab.py) the console script would name this checkout's entry point.
PREFLIGHT_MODULE = [sys.executable, "-m", "preflight"]


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


def run_child(argv: list[str], env: dict[str, str] | None = None, timeout: float = 300, cwd: Path = ROOT
              ) -> tuple[float, int, int, str]:
    """Run a process; return wall seconds, exit code, peak RSS in KiB and stdout."""
    wall, code, rss_mb, _cpu, out = run_measured(argv, env, timeout, cwd)
    return wall, code, round(rss_mb * 1024), out


def _exited_within(pid: int, timeout: float) -> bool:
    """Wait until a child process exits (without reaping it) or `timeout` seconds pass; whether it exited."""
    try:
        handle = os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux, or an old kernel: poll
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
            time.sleep(0.001)
        return False
    try:
        return bool(select.select([handle], [], [], timeout)[0])
    finally:
        os.close(handle)


def loop_ms() -> float:
    """How long this machine takes for a fixed piece of pure Python (best of three): a speed gauge.

    The ratios below divide by a fixed network time, so they move with the CPU's speed, and a shared virtual
    machine's speed drifts by a factor of up to two within an hour. Printed at the start and the end of the run,
    next to the figures, so that two runs can be told apart by the machine they ran on.
    """
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for number in range(2_000_000):
            total += number
        best = min(best, time.perf_counter() - started)
    return best * 1000


def median_walls(commands: list[list[str]], repeats: int) -> list[float]:
    """The median wall time of each command, run in turns (one of each, `repeats` times), so that a drift of the
    machine's speed during the measurement weighs on every command alike."""
    walls: list[list[float]] = [[] for _ in commands]
    for _ in range(repeats):
        for index, argv in enumerate(commands):
            walls[index].append(run_child(argv)[0])
    return [statistics.median(times) for times in walls]


def editable_hook() -> str | None:
    """The import hook of a setuptools editable install, if this interpreter's site loads one at every start.

    An install from a wheel has none. The hook costs every Python start here, `python -c pass`
    included, so with it the start-up ratios below come out better than a user's install would give them.
    """
    probe = ("import sys; print(next((f.__module__ for f in sys.meta_path "
             "if f.__module__.startswith('__editable__')), ''))")
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip()
    return found or None


# The generated clients a full run imports before its first cloud call: no request to the cloud can precede this.
SDK_IMPORT = ("import alibabacloud_credentials.client, alibabacloud_dataworks_public20240518.client, "
              "alibabacloud_pvtz20180101.client, alibabacloud_privatelink20200415.client, "
              "alibabacloud_vpc20160428.client")
STARTUP_TARGETS = {"preflight --version": 3.0, "preflight list": 6.0}


def bench_startup(bench: Bench, repeats: int) -> float:
    """The quick commands against a bare interpreter; returns I, the median wall of importing the SDK clients."""
    print(f"\nStart-up (median of {repeats}, the commands in turns)")
    hook = editable_hook()
    if hook:
        print(f"  note: every Python start here imports {hook} (an editable install's import hook), python -c pass "
              "included; an install from a wheel does not, and its ratios are higher. `make` installs without it.")
    run_child([*PREFLIGHT, "list"])  # warm the bytecode cache once
    run_child([sys.executable, "-c", SDK_IMPORT])
    commands = {"preflight --version": [*PREFLIGHT, "--version"], "preflight list": [*PREFLIGHT, "list"]}
    baseline, sdk_import, *walls = median_walls(
        [[sys.executable, "-c", "pass"], [sys.executable, "-c", SDK_IMPORT], *commands.values()], repeats)
    for label, wall in zip(commands, walls, strict=True):
        ratio, limit = wall / baseline, STARTUP_TARGETS[label]
        bench.add(Row(f"{label} / python -c pass", f"{ratio:.2f}x", f"<= {limit:g}x", ratio <= limit,
                      f"({wall * 1000:.0f} ms vs {baseline * 1000:.0f} ms)"))
    print(f"  I = importing the generated SDK clients (python -c 'import ...'): {sdk_import * 1000:.0f} ms")
    return sdk_import


class Simulator:
    """`preflight simulate` in a child process, with its config, environment and request-statistics files."""

    def __init__(self, directory: Path, *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
        self.config = directory / "sim.yaml"
        self.env_file = directory / "sim.env"
        self.stats_file = directory / "sim-stats.json"
        for path in (self.config, self.env_file, self.stats_file):
            path.unlink(missing_ok=True)
        # As a module: a build imported through PYTHONPATH (bench/ab.py) cannot use this checkout's console script.
        self.process = subprocess.Popen([*PREFLIGHT_MODULE, "simulate", "--config-out", str(self.config), "--env-out",
                                         str(self.env_file), "--stats-out", str(self.stats_file), *args],
                                        stdout=subprocess.DEVNULL, cwd=cwd, env=env)
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

    def cpu_seconds(self) -> float | None:
        """The CPU time the simulator has used so far (from /proc; None where there is none)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> dict[str, dict[str, int]]:
        """Stop the simulator; return what it received."""
        self.process.terminate()
        self.process.wait(timeout=10)
        stats: dict[str, dict[str, int]] = json.loads(self.stats_file.read_text())
        return stats


# What each check waits for, in order: "api" (one cloud API round trip), "model" (one model-service request),
# "dns" (one DNS answer), "connect" (a TCP handshake: free on loopback), or a number of seconds the server itself
# takes (the simulated stream's pacing).
# Requests a check shares with an earlier one (the same question, memoised for the run) cost it nothing.
CHECK_WAITS: dict[str, tuple[str | float, ...]] = {
    "config.valid": (), "cloud.credentials": ("api",), "workspace.exists": (), "resource_group.ready": ("api",),
    "resource_group.attached": ("api",), "network.first_vpc": ("api",),
    "network.model_allowlist": ("api", "api"),  # DescribeZoneVpcTree, then DescribeZoneRecords
    "network.private_dns": (), "network.privatelink": ("api", "api"),  # ListVpcEndpoints, ListVpcEndpointZones
    "schedule.node_resource_group": ("api",), "resource_group.probe": (), "endpoint.url": (), "endpoint.dns": ("dns",),
    "endpoint.tcp": ("connect",), "endpoint.http": ("model",), "auth.key_format": (), "auth.key_valid": ("model",),
    "model.listed": (), "inference.completion": ("model",), "inference.stream": ("model", 0.05),
    "inference.chat": ("model",), "inference.embedding": ("model",),  # one input and the batch, together
}


def critical_path(latency_s: float, dns_latency_s: float) -> tuple[float, list[str]]:
    """The longest chain of waits through the check graph (from `preflight list`), in seconds, and the chain."""
    listed = json.loads(subprocess.run([*PREFLIGHT, "list", "--format", "json"], capture_output=True, text=True,
                                       check=True, cwd=ROOT).stdout)
    unknown = [item["id"] for item in listed if item["id"] not in CHECK_WAITS]
    if unknown:
        raise SystemExit(f"bench/run.py does not know what these checks wait for: {unknown}")
    cost = {"api": latency_s, "model": latency_s, "dns": dns_latency_s, "connect": 0.0}
    finish: dict[str, tuple[float, list[str]]] = {}
    for item in listed:  # `preflight list` is in dependency order
        before = max((finish[dep] for dep in item["depends_on"]), default=(0.0, []), key=lambda pair: pair[0])
        own = sum(cost[w] if isinstance(w, str) else w for w in CHECK_WAITS[item["id"]])
        finish[item["id"]] = (before[0] + own, [*before[1], item["id"]])
    return max(finish.values(), key=lambda pair: pair[0])


def unlimited(config: Path) -> None:
    """Tell the client what the simulator allows when it limits nothing: an account with a high limit, so the
    client's default pacing does not stand in for a limit that is not there (the fleet bench measures that)."""
    text = config.read_text()
    config.write_text(text.replace("cloud: {", "cloud: {rate_limits: {default: 1000}, ", 1))


def bench_critical_path(bench: Bench, sizes: list[tuple[int, int, int]], latency_ms: float, dns_latency_ms: float,
                        repeats: int, sdk_import_s: float) -> dict[int, dict[str, dict[str, int]]]:
    """Wall of whole `preflight run` processes against the floor I + CP: the SDK import, then the graph's longest
    chain of requests."""
    path_s, chain = critical_path(latency_ms / 1000, dns_latency_ms / 1000)
    floor_s = sdk_import_s + path_s
    print(f"\nCritical path (CP) at {latency_ms:g} ms per API/model request and {dns_latency_ms:g} ms per DNS "
          f"answer: {path_s * 1000:.0f} ms\n  {' -> '.join(chain)}\n"
          f"Floor I + CP = {sdk_import_s * 1000:.0f} + {path_s * 1000:.0f} = {floor_s * 1000:.0f} ms")
    all_stats = {}
    targets = {1: 1.2, 10: 1.6, 100: 1.6}
    with tempfile.TemporaryDirectory() as directory:
        for services, target_count, groups in sizes:
            simulator = Simulator(Path(directory), "--services", str(services), "--targets", str(target_count),
                                  "--resource-groups", str(groups), "--latency-ms", str(latency_ms),
                                  "--dns-latency-ms", str(dns_latency_ms))
            try:
                env = simulator.environ()
                unlimited(simulator.config)
                argv = [*PREFLIGHT, "run", "-c", str(simulator.config), "--report-dir", str(Path(directory) / "r"),
                        "--format", "json"]
                runs = [run_child(argv, env) for _ in range(repeats)]
            finally:
                stats = simulator.stop()
            all_stats[services] = stats
            failed = [code for _, code, _, _ in runs if code != 0]
            if failed:
                raise SystemExit(f"the {services}-service run failed (exit {failed[0]}): {runs[0][3][:500]}")
            wall = statistics.median(run[0] for run in runs)
            rss_mb = max(run[2] for run in runs) / 1024
            ratio = wall / floor_s
            limit = targets.get(services, 1.6)
            bench.add(Row(f"wall / (I + CP), {services} service(s)", f"{ratio:.2f}x", f"<= {limit}",
                          ratio <= limit, f"({wall * 1000:.0f} ms; {target_count} target(s), {groups} group(s))"))
            if services == 100:
                bench.add(Row("peak RSS, 100 services", f"{rss_mb:.0f} MB", "<= 200 MB", rss_mb <= 200,
                              "(the run's one process, from wait4)"))
    return all_stats


def bench_requests(bench: Bench, stats: dict[int, dict[str, dict[str, int]]], sizes: list[tuple[int, int, int]]
                   ) -> None:
    print("\nRequests the simulator received per run (shared control-plane questions are asked once)")
    for services, _target_count, groups in sizes:
        if services not in stats:
            continue
        cloud, model = stats[services]["cloud"], stats[services]["model"]
        runs = max(1, stats[services]["cloud"].get("GetResourceGroup", 1) // groups)
        per_group = {action: count / runs / groups for action, count in cloud.items()
                     if action in ("GetResourceGroup", "ListNetworks", "ListResourceGroupAssociateProjects")}
        per_service = sum(model.values()) / runs / services
        print(f"  {services:>3} services: model requests per service {per_service:.1f}; cloud calls "
              f"{ {a: round(c / runs, 1) for a, c in sorted(cloud.items())} }; DNS queries "
              f"{stats[services]['dns'].get('queries', 0) / runs / services:.1f} per service")
        once = all(value == 1 for value in per_group.values())
        bench.add(Row(f"shared questions once per group, {services} service(s)",
                      ", ".join(f"{k} {v:g}" for k, v in per_group.items()), "1 each", once))
        bench.add(Row(f"model requests per service, {services} service(s)", f"{per_service:.1f}", "<= 7",
                      per_service <= 7))


def bench_endless_stream(bench: Bench) -> None:
    print("\nAn endless full-speed stream is cut at the byte cap")
    with tempfile.TemporaryDirectory() as directory:
        results = {}
        for scenario in ("healthy", "stream-endless"):
            simulator = Simulator(Path(directory), "--scenario", scenario)
            try:
                _wall, _code, rss, out = run_child([*PREFLIGHT, "run", "-c", str(simulator.config), "--only",
                                                  "inference.stream", "--format", "json", "--no-reports"],
                                                 simulator.environ())
            finally:
                simulator.stop()
            report = json.loads(out)
            stream = next(r for r in report["results"] if r["check"] == "inference.stream" and r["service"] == "qwen")
            results[scenario] = (rss / 1024, stream)
        growth = results["stream-endless"][0] - results["healthy"][0]
        stream = results["stream-endless"][1]
        seconds = stream["timings"]["duration_ms"] / 1000
        bench.add(Row("endless stream: verdict", stream["status"], "fail", stream["status"] == "fail",
                      stream["summary"][:70]))
        bench.add(Row("endless stream: check time", f"{seconds:.2f} s", "<= 31 s", seconds <= 31.0))
        bench.add(Row("endless stream: peak RSS growth", f"{growth:.1f} MB", "<= 50 MB", growth <= 50))


def run_measured(argv: list[str], env: dict[str, str] | None, timeout: float = 600, cwd: Path = ROOT
                 ) -> tuple[float, int, float, float, str]:
    """Run a process; return wall seconds, exit code, peak RSS in MB, CPU seconds (user + system, from wait4) and
    stdout.

    The wait wakes when the process exits (a pidfd, Linux 5.3 and later), not at the next tick of a polling loop,
    which would be a visible share of `python -c pass`.
    """
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
        if not _exited_within(process.pid, timeout):
            process.kill()
        _pid, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        return (wall, os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime,
                out.read().decode("utf-8", "replace"))


FLEET_RATE = 20.0  # calls per second per action and region, the simulator's flow control and the client's default
POLLING = ("GetWorkflowInstance", "ListTaskInstances", "GetTaskInstance", "GetTaskInstanceLog")


def rate_floor(stats: dict[str, Any], actions: tuple[str, ...] | None = None) -> tuple[float, str]:
    """F: the largest, over actions and regions, of the calls the simulator received / the rate, and which."""
    worst, which = 0.0, "-"
    for region, calls in stats["cloud_by_region"].items():
        for action, count in calls.items():
            if (actions is None or action in actions) and count / FLEET_RATE > worst:
                worst, which = count / FLEET_RATE, f"{action} in {region}: {count} calls"
    return worst, which


def naive_calls(report: dict[str, Any]) -> int:
    """The cloud calls a client without shared answers would make: every check that ran asks its own questions."""
    return sum(sum(wait == "api" for wait in CHECK_WAITS.get(result["check"], ())) for result in report["results"]
               if result["status"] in ("pass", "fail", "warn"))


def backoff_lag(task_s: float, first: float = 1.0, cap: float = 8.0) -> float:
    """How long after a task's end a follower polling at 1, 2, 4 ... s (capped) first sees it: the schedule's part
    of the polling floor."""
    polled, step = 0.0, first
    while polled < task_s:
        polled += step
        step = min(cap, step * 2)
    return polled - task_s


def bench_fleet(bench: Bench, quick: bool, sdk_import_s: float) -> None:
    """A fleet over regions and resource groups under the simulator's flow control, and the same in-network."""
    services, groups, regions = (100, 20, 5) if quick else (500, 100, 5)
    latency_ms = 50.0
    print(f"\nFleet: {services} services, {groups} resource groups (one target each) over {regions} regions, "
          f"{latency_ms:g} ms per request, the simulator allowing {FLEET_RATE:g} calls/s per action and region")
    with tempfile.TemporaryDirectory() as directory:
        simulator = Simulator(Path(directory), "--services", str(services), "--targets", str(groups),
                              "--resource-groups", str(groups), "--regions", str(regions), "--latency-ms",
                              str(latency_ms), "--dns-latency-ms", "5", "--rate-limit", str(FLEET_RATE))
        try:
            argv = [*PREFLIGHT, "run", "-c", str(simulator.config), "--no-reports", "--format", "json"]
            wall, code, rss_mb, cpu_s, out = run_measured(argv, simulator.environ())
        finally:
            stats = simulator.stop()
        report = json.loads(out) if out.startswith("{") else {"results": []}
        bad = [f"{r['target']} {r['check']}: {r['summary'][:80]}" for r in report["results"]
               if r["status"] in ("fail", "error")]
        floor_s, which = rate_floor(stats)
        limit = 1.3 * (sdk_import_s + floor_s)
        print(f"  F = {floor_s * 1000:.0f} ms ({which}); I = {sdk_import_s * 1000:.0f} ms; "
              f"throttled by the simulator: {sum(stats['throttled'].values())} calls")
        bench.add(Row(f"fleet {services}: fail/error results", str(len(bad)), "0", code in (0, 1) and not bad,
                      f"(exit {code}) {bad[0] if bad else ''}"))
        bench.add(Row(f"fleet {services}: wall / (I + F)", f"{wall / (sdk_import_s + floor_s):.2f}x", "<= 1.3x",
                      wall <= limit, f"({wall * 1000:.0f} ms)"))
        made, naive = sum(stats["cloud"].values()), naive_calls(report)
        print(f"  cloud calls per run: {made} (a naive client, every check asking for itself: {naive}); "
              f"CPU {cpu_s:.1f} s, {cpu_s / services * 1000:.1f} ms per service")
        if not quick:
            bench.add(Row(f"fleet {services}: peak RSS", f"{rss_mb:.0f} MB", "<= 300 MB", rss_mb <= 300))
        bench_fleet_in_network(bench, Path(directory), services, groups, regions, latency_ms)


def bench_fleet_in_network(bench: Bench, directory: Path, services: int, groups: int, regions: int,
                           latency_ms: float) -> None:
    """The same fleet with --from resource-group: one collector per group, followed with a doubling backoff."""
    in_groups = 20 if services >= 100 else groups
    simulator = Simulator(directory, "--services", str(services), "--targets", str(services // 5),
                          "--resource-groups", str(in_groups), "--regions", str(regions), "--latency-ms",
                          str(latency_ms), "--dns-latency-ms", "5", "--rate-limit", str(FLEET_RATE))
    try:
        argv = [*PREFLIGHT, "run", "-c", str(simulator.config), "--no-reports", "--format", "json", "--from",
                "resource-group", "--only", "resource_group.probe"]
        _wall, code, _rss, _cpu, out = run_measured(argv, simulator.environ())
    finally:
        stats = simulator.stop()
    report = json.loads(out) if out.startswith("{") else {"results": []}
    probes = [r for r in report["results"] if r["check"] == "resource_group.probe"]
    records = [r["evidence"] for r in probes]
    seconds = [float(record.get("seconds") or 0) for record in records]
    found: Any = stats.get("task_seconds")
    tasks = [float(task) for task in found or [0.0]]
    task_s = max(tasks)
    poll_floor, which = rate_floor(stats, POLLING)
    floor_s = poll_floor + max(backoff_lag(task) for task in tasks)
    collect_s = max(seconds, default=0.0)
    ok = code == 0 and all(r["status"] == "pass" for r in probes)
    print(f"  in-network over {in_groups} groups: {len(tasks)} ad hoc instances for {len(probes)} targets; "
          f"task run time {task_s * 1000:.0f} ms; polling floor {floor_s * 1000:.0f} ms ({which}, plus the "
          "backoff schedule's lag past the task's end)")
    bench.add(Row(f"in-network {in_groups} groups: probes pass", f"{sum(r['status'] == 'pass' for r in probes)}"
                  f"/{len(probes)}", "all", ok, probes[0]["summary"][:70] if probes and not ok else ""))
    bench.add(Row(f"in-network {in_groups} groups: instances", str(len(tasks)), f"{in_groups}", len(tasks) ==
                  in_groups))
    bound = task_s + 1.5 * floor_s
    bench.add(Row(f"in-network {in_groups} groups: collect / (T + 1.5 P)",
                  f"{collect_s / bound:.2f}x" if bound else "-", "<= 1.0x", ok and collect_s <= bound,
                  f"({collect_s * 1000:.0f} ms)"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and sizes, under 60 s")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--dns-latency-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    print(f"dw-preflight benchmarks: {' '.join([sys.executable, *sys.argv])}")
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}")
    gauge = loop_ms()
    print(f"speed gauge: a fixed Python loop takes {gauge:.0f} ms (lower is faster; see loop_ms)")
    bench = Bench()
    sdk_import_s = bench_startup(bench, 5 if args.quick else 11)
    sizes = [(1, 1, 1), (10, 2, 2), (100, 10, 4)]
    stats = bench_critical_path(bench, sizes, args.latency_ms, args.dns_latency_ms, 1 if args.quick else 5,
                                sdk_import_s)
    bench_requests(bench, stats, sizes)
    bench_fleet(bench, args.quick, sdk_import_s)
    bench_endless_stream(bench)
    print(f"\nspeed gauge at the end: {loop_ms():.0f} ms (at the start: {gauge:.0f} ms)")
    missed = [row for row in bench.rows if not row.ok]
    print(f"\n{len(bench.rows) - len(missed)} of {len(bench.rows)} targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
