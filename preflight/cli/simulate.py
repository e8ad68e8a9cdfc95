"""`preflight simulate`: the simulator in the foreground, its config and environment written out, until Ctrl-C or
SIGTERM."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import tempfile
import threading
from pathlib import Path

from preflight.errors import EXIT_OK, UsageError
from preflight.simulator.harness import Simulator
from preflight.simulator.scenarios import get_scenario, scaled_world


def cmd_simulate(args: argparse.Namespace) -> int:
    scenario = get_scenario(args.scenario)
    if args.services > 0:
        world = scaled_world(args.services, targets=args.targets, resource_groups=args.resource_groups,
                             regions=args.regions)
        scenario = dataclasses.replace(scenario, name=f"{scenario.name} x{args.services}", world=world)
    elif args.regions != 1:
        raise UsageError("--regions: only with --services (a scaled world spreads its targets over regions)")
    if args.rate_limit is not None and not 0 < args.rate_limit < float("inf"):
        raise UsageError(f"--rate-limit: expected a positive number of calls per second, got {args.rate_limit:g}")
    ports = {"--openapi-port": args.openapi_port, "--model-port": args.model_port, "--dns-port": args.dns_port}
    for option, port in ports.items():
        if not 0 <= port <= 65535:
            raise UsageError(f"{option}: expected a port from 0 (any free one) to 65535, got {port}")
    stop = threading.Event()
    simulator = Simulator(scenario, latency_ms=args.latency_ms, dns_latency_ms=args.dns_latency_ms,
                          openapi_port=args.openapi_port, model_port=args.model_port, dns_port=args.dns_port,
                          rate_limit=args.rate_limit)
    try:
        simulator.start()
    except OSError as exc:
        chosen = ", ".join(f"{option} {port}" for option, port in ports.items() if port) or "any free port"
        raise UsageError(f"the simulator cannot listen on 127.0.0.1 ({chosen}): {exc.strerror or exc}") from None
    # Until stop, SIGTERM ends the wait below as Ctrl-C does (the handler only sets the event). Only the main
    # thread may set a handler; a program running this in another thread stops it with Ctrl-C or its own means.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if in_main else None
    try:
        _serve_simulator(simulator, args, stop)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        simulator.stop()
    return EXIT_OK


def _serve_simulator(simulator: Simulator, args: argparse.Namespace, stop: threading.Event) -> None:
    """Write the config and environment, say what listens where, and wait for a stop."""
    with tempfile.TemporaryDirectory(prefix="preflight-simulate-") as scratch:
        text = simulator.config_text()
        env_lines = "".join(f"{name}={value}\n" for name, value in simulator.environ().items())
        config_path = Path(args.config_out or Path(scratch) / "simulator.yaml")
        env_path = Path(args.env_out or Path(scratch) / "simulator.env")
        config_path.write_text(text, encoding="utf-8")  # before the environment: a reader waits for that one
        env_path.touch(mode=0o600)
        env_path.write_text(env_lines, encoding="utf-8")
        print(_simulator_banner(simulator, config_path, env_path, args))
        print(text, end="")
        print("# Ctrl-C or SIGTERM to stop", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        if args.stats_out:
            Path(args.stats_out).write_text(json.dumps(simulator.stats(), indent=2), encoding="utf-8")


def _simulator_banner(simulator: Simulator, config_path: Path, env_path: Path, args: argparse.Namespace) -> str:
    """What listens where, how to run against it, and a request that reaches a model service by hand, as YAML
    comments: the whole output stays a config file (`preflight simulate > sim.yaml`)."""
    scenario = simulator.scenario
    model = simulator.world.models[0]
    down = " (this scenario: nothing listens)" if scenario.service_down else ""
    rows = [("what", "listens on", "answers"),
            ("OpenAPI", f"http://127.0.0.1:{simulator.cloud_port}",
             "the DataWorks, PrivateZone, PrivateLink and VPC APIs (cloud.endpoint)"),
            ("model service", f"http://127.0.0.1:{simulator.model_port}",
             f"every model domain; the Host header picks the service{down}"),
            ("DNS", f"127.0.0.1:{simulator.dns_port} UDP+TCP", "A records of the model domains (dns.nameservers)")]
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    removed = " (removed when the simulator stops; --{} FILE keeps one)"
    return "\n".join([
        f"# simulator running scenario '{scenario.name}': {scenario.description}",
        "#",
        *(f"#   {row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}" for row in rows),
        "#",
        f"# environment (API keys, AccessKey pair): {env_path}{'' if args.env_out else removed.format('env-out')}",
        f"# config (printed below): {config_path}{'' if args.config_out else removed.format('config-out')}",
        f"# run against it from another shell: set -a; . {env_path}; set +a; preflight run -c {config_path}",
        f"# a request by hand to {model.service_id} ({model.model}), with the environment loaded; the Host header "
        "must name the service's domain, which --resolve sends to loopback:",
        f"#   curl --resolve {model.host}:{simulator.model_port}:127.0.0.1 "
        f"-H \"Authorization: ${simulator.key_env(0, model)}\" http://{model.host}:{simulator.model_port}/v1/models",
        "#",
    ])



__all__ = ["cmd_simulate"]
