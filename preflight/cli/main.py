"""The command line: `main(argv) -> int`, the only place that wires config, engine, reports and output."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from preflight import __version__
from preflight.cli.exits import reader_gone
from preflight.errors import EXIT_BROKEN, EXIT_FAILED, EXIT_OK, EXIT_READER_GONE, EXIT_USAGE, PreflightError

if TYPE_CHECKING:
    from preflight.config import Config
    from preflight.engine.model import RunReport
    from preflight.engine.registry import Registry

# The names of redact.SECRET_ENVIRONMENT, without importing the redactor to learn them (a test holds them equal).
SECRET_VARIABLES = ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN")
EXIT_CODES = {
    EXIT_OK: "no check failed",
    EXIT_FAILED: "a check failed (or warned, with --strict)",
    EXIT_USAGE: "usage or config error",
    EXIT_BROKEN: "the tool itself broke (a crash, or a check raised while nothing failed)",
    EXIT_READER_GONE: "the output's reader went away (as in `preflight list | head`); nothing more is printed",
}


def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns: COLUMNS when it is a positive number, else the terminal's, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    stdout = sys.__stdout__
    try:
        return os.get_terminal_size(stdout.fileno()).columns or 80 if stdout is not None else 80
    except (AttributeError, ValueError, OSError):
        return 80


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, without importing shutil (and with it bz2 and lzma) to learn the terminal's width:
    argparse makes a formatter for every argument it adds, at every command's start."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, _terminal_columns() - 2 if width is None else width)

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        # As argparse wraps help, but never inside a hyphenated name (a scenario, an option).
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so main() owns every exit code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:
        from preflight.errors import UsageError

        command = self.prog.partition(" ")[2]  # main() prints "preflight: " before it already
        raise UsageError(f"{command}: {message}" if command else message)


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("console", "json"), default="console",
                        help="what to print on stdout (reports are written either way)")
    parser.add_argument("--report-dir", default="reports", metavar="DIR",
                        help="where report.json, junit.xml, report.md and report.html go (default: reports/)")
    parser.add_argument("--no-reports", action="store_true", help="write no report files")
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="S",
                        help="deadline for the whole run in seconds (default 300)")
    parser.add_argument("--only", action="append", default=[], metavar="ID|TAG",
                        help="run only these checks (and what they depend on); ids, tags, planes or globs")
    parser.add_argument("--skip", action="append", default=[], metavar="ID|TAG",
                        help="skip these checks; checks depending on them skip with a reason")
    parser.add_argument("--target", action="append", default=[], metavar="NAME", help="only these targets")
    parser.add_argument("--max-tokens-budget", type=int, default=None, metavar="N",
                        help="stop inference checks once N tokens are spent")
    parser.add_argument("--concurrency", type=int, default=256, metavar="N", help="checks running at once")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour the console output (default auto: on a terminal, unless NO_COLOR is set)")
    parser.add_argument("--ca-bundle", metavar="FILE", help="trust this private CA for https endpoints (verification "
                        "stays on)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print each cloud call's action, request fields and raw answer (redacted) to stderr")


def _add_wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", metavar="DURATION", default=None,
                        help="re-run what did not pass (and what it blocked) until everything passes or DURATION "
                             "(90s, 10m, 1h) is spent; a failure waiting cannot change stops the wait at once")
    parser.add_argument("--interval", type=float, default=10.0, metavar="S",
                        help="with --wait: seconds between rounds (default 10)")


def _add_from_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="origin", choices=("local", "resource-group"), default="local",
                        help="where the network and data checks observe from (default: here)")
    parser.add_argument("--send-key", action="store_true",
                        help="with --from resource-group: send the API keys inside the submitted script so the "
                             "key and model checks also run there (the script is stored with the instance)")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with a known `command`, only that subcommand.

    Without one (`preflight --help`, a typo, an option first) every subcommand is there, with its help, for the
    listing and the error message. A subcommand's own parser, usage line and errors do not depend on the others.
    Building every subcommand cost argparse most of the parser's few milliseconds, at every start.
    """
    parser = _Parser(prog="preflight", description="Preflight checks for LLM model services on DataWorks "
                     "Serverless resource groups.", epilog="Exit codes: " + "; ".join(
                         f"{code} = {text}" for code, text in EXIT_CODES.items()))
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    if command not in _COMMANDS:  # not a command (an option, a typo): every subcommand, for the error message
        command = None

    def subcommand(name: str, help: str) -> argparse.ArgumentParser | None:
        return commands.add_parser(name, help=help) if command in (None, name) else None

    run = subcommand("run", help="run the checks of a config (or of one --endpoint)")
    if run is not None:
        run.add_argument("-c", "--config", default=None, metavar="FILE",
                         help="config file (default: preflight.yaml when no --endpoint is given)")
        single = run.add_argument_group("a single service without a config file")
        single.add_argument("--endpoint", metavar="URL")
        single.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the API key")
        single.add_argument("--kind", choices=("completion", "chat", "embedding"), default="completion")
        single.add_argument("--model", metavar="NAME")
        single.add_argument("--auth", choices=("raw", "bearer"), default="raw")
        single.add_argument("--workspace", metavar="ID")
        single.add_argument("--resource-group", metavar="ID")
        single.add_argument("--region", metavar="REGION")
        _add_output_options(run)
        _add_wait_options(run)
        _add_from_options(run)

    listing = subcommand("list", help="list every registered check")
    if listing is not None:
        listing.add_argument("--format", choices=("table", "json", "markdown"), default="table")

    explain = subcommand("explain", help="what a check proves, how, and how to fix a failure")
    if explain is not None:
        explain.add_argument("check_id", metavar="ID")

    demo = subcommand("demo", help="run the whole catalogue against the built-in simulator")
    if demo is not None:
        demo.add_argument("--scenario", default="healthy", metavar="NAME", help=_scenario_help(command))
        demo.add_argument("--list-scenarios", action="store_true", help="print one scenario a line, name first")
        _add_output_options(demo)
        _add_wait_options(demo)
        _add_from_options(demo)

    script = subcommand("probe-script", help="print the in-network collector to paste into a node")
    if script is not None:
        script.add_argument("-c", "--config", default="preflight.yaml", metavar="FILE")
        script.add_argument("--target", required=True, metavar="NAME")
        form = script.add_mutually_exclusive_group()
        form.add_argument("--shell", dest="form", action="store_const", const="shell", help="a Shell node (default)")
        form.add_argument("--python", dest="form", action="store_const", const="python", help="a Python node")
        script.add_argument("--send-key", action="store_true", help="put the API keys into the script")

    bundle = subcommand("bundle", help="zip the last run's reports, masked config and versions for support")
    if bundle is not None:
        bundle.add_argument("-o", "--output", metavar="FILE", help="default: preflight-bundle-<UTC time>.zip")
        bundle.add_argument("--report-dir", default="reports", metavar="DIR")
        bundle.add_argument("-c", "--config", default=None, metavar="FILE",
                            help="the config to include, masked (default: preflight.yaml when it exists)")

    ingest = subcommand("ingest", help="judge the observations in a saved node log and write reports")
    if ingest is not None:
        ingest.add_argument("logfile", metavar="LOGFILE")
        ingest.add_argument("-c", "--config", default="preflight.yaml", metavar="FILE")
        _add_output_options(ingest)

    diff = subcommand("diff", help="what changed between two report.json files (exit 1 when a pass now fails)")
    if diff is not None:
        diff.add_argument("old", metavar="OLD.json")
        diff.add_argument("new", metavar="NEW.json")
        diff.add_argument("--format", choices=("console", "markdown"), default="console")
        diff.add_argument("--ttft-threshold-ms", type=float, default=1000.0, metavar="N",
                          help="report a time to first token that moved by more than N ms (default 1000)")

    init = subcommand("init", help="write a starting preflight.yaml from what the account says")
    if init is not None:
        init.add_argument("--workspace", required=True, metavar="ID", help="the DataWorks workspace id")
        init.add_argument("--region", required=True, metavar="REGION", help="e.g. cn-beijing")
        init.add_argument("--resource-group", metavar="ID", help="only this resource group (default: every "
                          "Serverless group attached to the workspace)")
        init.add_argument("-o", "--output", default="preflight.yaml", metavar="FILE",
                          help="where to write it (default preflight.yaml; - prints it)")
        init.add_argument("--force", action="store_true", help="replace FILE when it exists")
        init.add_argument("--cloud-endpoint", metavar="HOST", help="ask this OpenAPI endpoint (every product) "
                          "instead of the region's default, and write it into the config")
        init.add_argument("--cloud-protocol", choices=("https", "http"), default="https")

    schema = subcommand("schema", help="print the JSON Schema of preflight.yaml")
    if schema is not None:
        schema.add_argument("--check", metavar="FILE", help="instead, say whether FILE is the schema printed")

    simulate = subcommand("simulate", help="run the simulator in the foreground")
    if simulate is not None:
        simulate.add_argument("--scenario", default="healthy", metavar="NAME", help=_scenario_help(command))
        simulate.add_argument("--openapi-port", type=int, default=0, metavar="PORT",
                              help="port of the DataWorks/PrivateZone/PrivateLink/VPC OpenAPI (default 0: any free "
                                   "port)")
        simulate.add_argument("--model-port", type=int, default=0, metavar="PORT",
                              help="port of the model service, for every model domain (default 0: any free port)")
        simulate.add_argument("--dns-port", type=int, default=0, metavar="PORT",
                              help="port of the DNS server, UDP and TCP (default 0: any free port)")
        simulate.add_argument("--latency-ms", type=float, default=0.0, metavar="MS",
                              help="added to every API and model call (default 0)")
        simulate.add_argument("--dns-latency-ms", type=float, default=0.0, metavar="MS",
                              help="added to every DNS answer (default 0)")
        simulate.add_argument("--config-out", metavar="FILE",
                              help="write the config to FILE and keep it (default: a temporary file, removed on "
                                   "stop; the config is printed either way)")
        simulate.add_argument("--env-out", metavar="FILE",
                              help="write the environment (KEY=value lines) to FILE and keep it (default: a "
                                   "temporary file, removed on stop)")
        simulate.add_argument("--services", type=int, default=0, metavar="N",
                              help="serve a scaled world of N model services (for benchmarks)")
        simulate.add_argument("--targets", type=int, default=1, metavar="N",
                              help="with --services: spread over N targets")
        simulate.add_argument("--resource-groups", type=int, default=1, metavar="N",
                              help="with --services: and over N resource groups")
        simulate.add_argument("--regions", type=int, default=1, metavar="N",
                              help="with --services: spread the targets over N regions, each region's OpenAPI on "
                                   "its own port (cloud.endpoints)")
        simulate.add_argument("--rate-limit", type=float, default=None, metavar="N",
                              help="answer Throttling.User (HTTP 429) past N calls per second per action and region, "
                                   "with a small burst, as the gateway's flow control does (default: the scenario's)")
        simulate.add_argument("--stats-out", metavar="FILE",
                              help="on exit, write the requests the simulator received (per path, action, DNS)")
    return parser


def _scenario_help(command: str | None) -> str:
    """--scenario's help, naming every scenario: only for `demo` and `simulate`, which import the simulator anyway
    (`preflight --help` shows no option of a subcommand, and other commands never load the simulator)."""
    if command not in ("demo", "simulate"):
        return "the named fault to inject (default: healthy)"
    from preflight.simulator.scenarios import SCENARIOS

    return ("the named fault to inject (default: healthy); demo --list-scenarios says what each does: "
            + ", ".join(SCENARIOS))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list in (["--version"], ["-V"]):
        print(f"preflight {__version__}")
        return EXIT_OK
    try:
        return _main(args_list)
    finally:
        _close_cloud_sessions()


def _close_cloud_sessions() -> None:
    """Close the cloud sessions a command left open (a run that ended early, or the in-network follower's)."""
    if "preflight.cloud.session" in sys.modules:  # without importing it: most commands never need it
        sys.modules["preflight.cloud.session"].close_sessions()


def _cloud_likely(args_list: list[str]) -> bool:
    """Whether a command line is a run or demo that will probably ask the cloud, judged before parsing it."""
    if args_list[:1] not in (["run"], ["demo"]):
        return False
    narrowed = ("--only", "--endpoint", "-h", "--help", "--list-scenarios")
    return not any(arg.split("=")[0] in narrowed for arg in args_list[1:])


def _main(args_list: list[str]) -> int:
    if _cloud_likely(args_list):
        # Before anything else: the generated clients import on a background thread while this thread parses the
        # command line, reads the config and starts the checks that need no cloud.
        from preflight.cloud.session import start_import

        start_import()
    try:
        args = build_parser(args_list[0] if args_list else None).parse_args(args_list)
        if args.version:
            print(f"preflight {__version__}")
            return EXIT_OK
        if args.command is None:
            build_parser().print_help()
            return EXIT_USAGE
        handler = _COMMANDS[args.command]
        args.command_line = tuple(args_list)
        # Before any command can print: an AccessKey secret or STS token in the environment is masked everywhere.
        # With none set there is nothing to register, and a command that never masks anything (`list`) does
        # without the redactor's import.
        if any(os.environ.get(name) for name in SECRET_VARIABLES):
            from preflight.engine.redact import register_environment

            register_environment(os.environ)
        return handler(args)
    except PreflightError as exc:
        from preflight.engine.redact import redact

        print(f"preflight: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("preflight: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return reader_gone()
    except Exception as exc:  # the last line of defence: one readable line, never a traceback
        from preflight.engine.redact import redact

        print(f"preflight: internal error: {type(exc).__name__}: {redact(str(exc))}\n"
              "This is a bug in dw-preflight; please report it with `preflight bundle`.", file=sys.stderr)
        return EXIT_BROKEN


def console() -> None:
    """The `preflight` command and `python -m preflight`: main(), then exit with its code."""
    code = main()
    try:  # piped output is buffered: a reader that left shows up only now
        sys.stdout.flush()
    except BrokenPipeError:
        code = reader_gone()
    sys.exit(code)


# --- commands ----------------------------------------------------------------------------------------

def _registry() -> Registry:
    from preflight.engine.registry import load_registry

    return load_registry()


def cmd_list(args: argparse.Namespace) -> int:
    from preflight.cli import catalogue

    registry = _registry()
    if args.format == "json":
        print(catalogue.as_json(registry))
    elif args.format == "markdown":
        print(catalogue.as_markdown(registry), end="")
    else:
        print(catalogue.as_table(registry), end="")
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from preflight.cli import catalogue

    print(catalogue.explain(_registry().get(args.check_id)), end="")
    return EXIT_OK


def _load_run_config(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    from preflight.config import load_config, single_service_config
    from preflight.errors import UsageError

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
    from preflight.engine.runner import Runner, RunOptions, Selection

    out = stdout or sys.stdout
    if args.ca_bundle:
        if not Path(args.ca_bundle).is_file():
            from preflight.errors import UsageError

            raise UsageError(f"--ca-bundle: {args.ca_bundle} is not a readable file")
        config = dataclasses.replace(config, http=dataclasses.replace(config.http, ca_bundle=args.ca_bundle))
    register_secrets(config.secrets())
    # Again here, not only in main(): demo puts the simulator's AccessKey secret into the environment after that.
    register_environment(os.environ)
    registry = _registry()
    selection = Selection.build(registry, args.only, args.skip, args.target)
    unknown = (selection.targets or frozenset()) - {target.name for target in config.targets}
    if unknown:
        from preflight.errors import UsageError

        raise UsageError(f"--target: no target named {', '.join(sorted(unknown))} in the config")
    if args.concurrency < 1 or args.timeout <= 0:
        from preflight.errors import UsageError

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
        from preflight.errors import UsageError

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
                             carried=carried)
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
        _close_cloud_sessions()
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


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set variables for the duration of a demo (the credential chain reads the process environment)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def cmd_demo(args: argparse.Namespace) -> int:
    from preflight.simulator.scenarios import SCENARIOS, get_scenario

    if args.list_scenarios:
        for scenario in SCENARIOS.values():
            cause = f"{scenario.root_cause} ({scenario.root_status})" if scenario.root_cause else "none: exit 0"
            print(f"{scenario.name:<20} {scenario.description}; root cause: {cause}")
        return EXIT_OK
    scenario = get_scenario(args.scenario)
    from preflight.config import parse_config
    from preflight.simulator.harness import Simulator

    with Simulator(scenario) as simulator:
        environ = simulator.environ()
        text = simulator.config_text()
        config = parse_config(text, f"<demo:{scenario.name}>", {**os.environ, **environ})
        note = f"demo scenario '{scenario.name}': {scenario.description}"
        with _environment(environ):
            return execute(config, args, notes=(note,))


def cmd_simulate(args: argparse.Namespace) -> int:
    import signal
    import threading

    from preflight.errors import UsageError
    from preflight.simulator.harness import Simulator
    from preflight.simulator.scenarios import get_scenario

    scenario = get_scenario(args.scenario)
    if args.services > 0:
        import dataclasses

        from preflight.simulator.scenarios import scaled_world

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


def _serve_simulator(simulator: Any, args: argparse.Namespace, stop: Any) -> None:
    """Write the config and environment, say what listens where, and wait for a stop."""
    import tempfile
    from pathlib import Path

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
            import json

            Path(args.stats_out).write_text(json.dumps(simulator.stats(), indent=2), encoding="utf-8")


def _simulator_banner(simulator: Any, config_path: Any, env_path: Any, args: argparse.Namespace) -> str:
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


def cmd_probe_script(args: argparse.Namespace) -> int:
    from preflight.config import load_config
    from preflight.errors import UsageError
    from preflight.probe.script import build_collector_source, build_plan, build_shell_script

    config = load_config(args.config, os.environ)
    target = next((t for t in config.targets if t.name == args.target), None)
    if target is None:
        names = ", ".join(t.name for t in config.targets)
        raise UsageError(f"--target: no target named {args.target} in {args.config} (targets: {names})")
    plan = build_plan(config, target, send_key=args.send_key)
    text = build_collector_source(plan) if args.form == "python" else build_shell_script(plan, config.in_network.python)
    sys.stdout.write(text)
    if not args.send_key:
        print("# no API key inside: the key and model checks will run from where you run `preflight ingest`",
              file=sys.stderr)
    return EXIT_OK


def cmd_ingest(args: argparse.Namespace) -> int:
    from pathlib import Path

    from preflight.config import load_config
    from preflight.errors import UsageError
    from preflight.probe.submit import ingest

    config = load_config(args.config, os.environ)
    path = Path(args.logfile)
    try:
        log = path.read_bytes().decode("utf-8", "replace")
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    collected = ingest(log, config, str(path))
    if not args.only:
        args.only = ["network", "data", "config.valid"]
    note = f"observations ingested from {path}"
    return execute(config, args, notes=(note,), collected=collected)


def cmd_diff(args: argparse.Namespace) -> int:
    from preflight.cli.diff import diff_reports, load_report, render_console, render_markdown

    old, new = load_report(args.old), load_report(args.new)
    result = diff_reports(old, new, old_name=args.old, new_name=args.new, ttft_threshold_ms=args.ttft_threshold_ms)
    sys.stdout.write(render_markdown(result) if args.format == "markdown" else render_console(result))
    return result.exit_code


def cmd_init(args: argparse.Namespace) -> int:
    import asyncio
    import re
    from pathlib import Path

    from preflight.cli.init import discover, environment_for, render
    from preflight.config import REGION_PATTERN, CloudConfig, parse_config
    from preflight.errors import UsageError

    if not re.fullmatch(REGION_PATTERN, args.region):
        raise UsageError(f"--region: expected a region id like cn-beijing, got '{args.region}'")
    output = None if args.output == "-" else Path(args.output)
    if output is not None and output.exists() and not args.force:
        raise UsageError(f"{output} exists; pass --force to replace it, or -o another file")
    cloud = CloudConfig()
    if args.cloud_endpoint:
        cloud = CloudConfig(endpoint=args.cloud_endpoint, protocol=args.cloud_protocol,
                            network_endpoints={product: args.cloud_endpoint for product in ("pvtz", "privatelink",
                                                                                            "vpc")})
    from preflight.cloud.session import close_sessions

    try:
        discovery = asyncio.run(discover(args.workspace, args.region, cloud, args.resource_group))
    finally:
        close_sessions()
    text = render(discovery, cloud if args.cloud_endpoint else None)
    parse_config(text, str(output or "<init>"), environment_for(text))  # what it writes must load
    if output is None:
        sys.stdout.write(text)
        return EXIT_OK
    output.write_text(text, encoding="utf-8")
    services = sum(len(group.services) for group in discovery.groups)
    print(f"wrote {output}: {len(discovery.groups)} target(s), {services} service(s); check the lines marked "
          "'guessed:', export the keys it names, then run: preflight run -c " + str(output), file=sys.stderr)
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from preflight.config.schema import schema_text

    text = schema_text()
    if args.check:
        from pathlib import Path

        from preflight.errors import UsageError

        try:
            shipped = Path(args.check).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{args.check}: cannot be read: {exc.strerror or exc}") from None
        if shipped != text:
            print(f"{args.check} differs from the schema the config loader defines; regenerate it with "
                  f"`preflight schema > {args.check}`", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK
    sys.stdout.write(text)
    return EXIT_OK


def cmd_bundle(args: argparse.Namespace) -> int:
    from preflight.cli.bundle import bundle_command

    print(bundle_command(args.output, args.report_dir, args.config))
    return EXIT_OK


_COMMANDS = {
    "run": cmd_run,
    "list": cmd_list,
    "explain": cmd_explain,
    "demo": cmd_demo,
    "simulate": cmd_simulate,
    "probe-script": cmd_probe_script,
    "ingest": cmd_ingest,
    "bundle": cmd_bundle,
    "diff": cmd_diff,
    "init": cmd_init,
    "schema": cmd_schema,
}

__all__ = ["EXIT_CODES", "build_parser", "console", "execute", "main"]
