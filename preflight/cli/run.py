"""`preflight run`: load a config (or one --endpoint), run its checks, show progress, write the reports and choose
the exit code; `demo` and `ingest` run theirs through execute() too."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from preflight.cli.exits import close_cloud_sessions
from preflight.errors import EXIT_BROKEN, EXIT_FAILED, EXIT_OK, UsageError

if TYPE_CHECKING:
    from preflight.config import Config
    from preflight.engine.model import RunReport
    from preflight.engine.registry import Registry
    from preflight.engine.runner import Selection

# A run of at least this many services starts its checks once the cloud SDK is imported (_sdk_first).
HOLD_FOR_SDK_SERVICES = 50


def _load_run_config(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    from preflight.config import load_config, single_service_config

    if args.endpoint:
        if args.config:
            raise UsageError("give either -c FILE or --endpoint URL, not both")
        return single_service_config(endpoint=args.endpoint, kind=args.kind, api_key_env=args.api_key_env,
                                     region=args.region, workspace=args.workspace,
                                     resource_group=args.resource_group, model=args.model, auth=args.auth,
                                     environ=environ)
    return load_config(args.config or "preflight.yaml", environ)


def cmd_run(args: argparse.Namespace) -> int:
    config = _load_run_config(args, os.environ)
    return execute(config, args)


def execute(config: Config, args: argparse.Namespace, *, notes: tuple[str, ...] = (),
            stdout: TextIO | None = None, collected: Any = None) -> int:
    """Run a loaded config with the output options of `run`/`demo`, write reports, return the exit code."""
    import asyncio
    import dataclasses
    import time
    from pathlib import Path

    from preflight.config.context import target_header
    from preflight.engine.redact import REDACTOR, register_environment, register_secrets
    from preflight.engine.registry import load_registry
    from preflight.engine.runner import Runner, RunOptions, Selection

    out = stdout or sys.stdout
    if args.ca_bundle:
        if not Path(args.ca_bundle).is_file():
            raise UsageError(f"--ca-bundle: {args.ca_bundle} is not a readable file")
        config = dataclasses.replace(config, http=dataclasses.replace(config.http, ca_bundle=args.ca_bundle))
    register_secrets(config.secrets())
    # Again here, not only in main(): demo puts the simulator's AccessKey secret into the environment after that.
    register_environment(os.environ)
    registry = load_registry()
    selection = Selection.build(registry, args.only, args.skip, args.target)
    unknown = (selection.targets or frozenset()) - {target.name for target in config.targets}
    if unknown:
        raise UsageError(f"--target: no target named {', '.join(sorted(unknown))} in the config")
    if args.concurrency < 1 or args.timeout <= 0:
        raise UsageError("--concurrency and --timeout must be positive")
    if any(target.workspace or target.resource_group for target in config.targets) and (
            selection.only is None or any(registry.get(c).plane == "control" for c in selection.only)):
        from preflight.cloud.session import start_import

        start_import()  # unless main() started it already, on a guess from the command line
    progress = _progress(args, config, registry, selection)

    from_group = getattr(args, "origin", "local") == "resource-group"
    if from_group:
        notes += ("network and data checks observed from inside each target's resource group"
                  + ("" if args.send_key else "; the API key was not sent there (--send-key), so key and model "
                     "checks ran from here where they could"),)

    wait_s = None
    if getattr(args, "wait", None) is not None:
        from preflight.cli.wait import parse_duration

        wait_s = parse_duration(args.wait)
        if args.interval <= 0:
            raise UsageError("--interval must be positive")

    async def one_round(carried: Mapping[Any, Any], round_progress: Any) -> RunReport:
        found = collected
        if from_group:
            from preflight.probe.submit import collect

            targets = [t for t in config.targets if selection.targets is None or t.name in selection.targets]
            stage = getattr(round_progress, "stage", None) or _stage_to_stderr
            found = await collect(config, targets, send_key=args.send_key,
                                  deadline=time.monotonic() + args.timeout * 0.8, stage=stage)
        options = RunOptions(timeout_s=args.timeout, concurrency=args.concurrency,
                             token_budget=args.max_tokens_budget, notes=notes + config.warnings,
                             observations=found.observations if found is not None else None,
                             observation_origins=found.origins if found is not None else {}, argv=argv,
                             carried=carried, hold=_sdk_first(config, selection))
        runner = Runner(config, registry, selection, options, round_progress, describe=target_header(config))
        report = await runner.run()
        if config.waivers:
            from preflight.cli.waivers import apply_waivers

            report = apply_waivers(report, config.waivers)
        return report

    async def go() -> RunReport:
        if wait_s is None:
            return await one_round({}, progress)
        from preflight.cli.wait import wait_until_ready

        rounds = [0]

        async def next_round(carried: Mapping[Any, Any]) -> RunReport:
            rounds[0] += 1
            # The first round draws its progress; later ones only their round line, so a CI log of a ten-minute
            # wait stays readable (the final table shows the last round in full).
            return await one_round(carried, progress if rounds[0] == 1 else None)

        def say(line: str) -> None:
            if args.format == "console":
                print(REDACTOR.text(line), file=sys.stderr, flush=True)

        return await wait_until_ready(next_round, duration_s=wait_s, interval_s=args.interval,
                                      waitable=lambda check_id: registry.get(check_id).can_wait,
                                      strict=args.strict, say=say)

    # The command line as the report's header shows it: a secret typed into it is masked like any other.
    argv = tuple(REDACTOR.text(arg) for arg in ("preflight", *getattr(args, "command_line", ())))
    verbose = getattr(args, "verbose", False)
    if verbose:
        from preflight.cloud.session import set_trace

        set_trace(lambda line: print(line, file=sys.stderr, flush=True))
    try:
        report = asyncio.run(go())
    finally:
        if verbose:
            set_trace(None)
        close_cloud_sessions()
        close = getattr(progress, "close", None)
        if close is not None:
            close()
    return _finish(report, args, out)


def _stage_to_stderr(subject: str, message: str) -> None:
    if os.environ.get("PREFLIGHT_QUIET_STAGES") is None:
        from preflight.engine.redact import redact

        print(redact(f"{subject}: {message}"), file=sys.stderr)


def _progress(args: argparse.Namespace, config: Config, registry: Registry, selection: Any) -> Any:
    if args.format != "console":
        return None
    from preflight.report.console import LiveConsole

    plain = not sys.stderr.isatty() or os.environ.get("CI", "").lower() in ("1", "true", "yes")
    total = sum(1 for target in config.targets for check in registry.ordered
                for _ in ([None] if check.scope == "target" else target.services)
                if (selection.only is None or check.id in selection.only)
                and (selection.targets is None or target.name in selection.targets))
    return LiveConsole(sys.stderr, plain=plain, total=total)


def _sdk_first(config: Config, selection: Selection) -> Callable[[], Awaitable[object]] | None:
    """With many services, the checks start once the SDK is imported (see HOLD_FOR_SDK_SERVICES).

    The import runs on a thread beside the event loop, and the cloud checks wait for it. A few services' probes
    fill that wait with their round trips; many services' probes fill it with CPU instead, and the import, on the
    critical path of every cloud check, takes as much longer.
    """
    from preflight.cloud.imports import RUN_IMPORTS, imported, started

    targets = [t for t in config.targets if selection.targets is None or t.name in selection.targets]
    if sum(len(target.services) for target in targets) < HOLD_FOR_SDK_SERVICES or not started():
        return None

    async def hold() -> object:
        import asyncio

        return await asyncio.gather(*(imported(part) for part in RUN_IMPORTS))

    return hold


def _finish(report: RunReport, args: argparse.Namespace, out: TextIO) -> int:
    from pathlib import Path

    from preflight.engine.model import Status
    from preflight.engine.redact import redact

    if not args.no_reports:
        from preflight.report import write_reports

        written = write_reports(report, Path(args.report_dir))
    else:
        written = []
    if args.format == "json":
        from preflight.report.json import JsonFormat

        saved = next((path for path in written if path.name == JsonFormat.filename), None)
        # The report.json just written is this very text, rendered and redacted: print it rather than redo both.
        out.write(saved.read_text(encoding="utf-8") if saved else redact(JsonFormat().render(report)))
    else:
        from preflight.report.console import render_final

        color = args.color == "always" or (args.color == "auto" and out.isatty()
                                            and not os.environ.get("NO_COLOR"))
        render_final(report, out, color=color)
        if written:
            out.write(f"Reports: {', '.join(str(path) for path in written)}\n")
    statuses = {result.status for result in report.results}
    if Status.FAIL in statuses:
        return EXIT_FAILED
    if Status.ERROR in statuses:
        return EXIT_BROKEN
    if args.strict and Status.WARN in statuses:
        return EXIT_FAILED
    return EXIT_OK



__all__ = ["cmd_run", "execute"]
