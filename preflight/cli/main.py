"""The command line's parsing and dispatch: `main(argv) -> int` parses the arguments and hands them to the module
that does the command's work."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from preflight import __version__
from preflight.cli.exits import close_cloud_sessions, reader_gone
from preflight.cli.options import Parser, add_from_options, add_output_options, add_wait_options
from preflight.errors import EXIT_BROKEN, EXIT_FAILED, EXIT_OK, EXIT_READER_GONE, EXIT_USAGE, PreflightError

# The names of redact.SECRET_ENVIRONMENT, without importing the redactor to learn them (a test holds them equal).
SECRET_VARIABLES = ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN")
EXIT_CODES = {
    EXIT_OK: "no check failed",
    EXIT_FAILED: "a check failed (or warned, with --strict)",
    EXIT_USAGE: "usage or config error",
    EXIT_BROKEN: "the tool itself broke (a crash, or a check raised while nothing failed)",
    EXIT_READER_GONE: "the output's reader went away (as in `preflight list | head`); nothing more is printed",
}
COMMANDS = ("run", "list", "explain", "demo", "simulate", "probe-script", "ingest", "bundle", "diff", "init", "schema")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with a known `command`, only that subcommand.

    Without one (`preflight --help`, a typo, an option first) every subcommand is there, with its help, for the
    listing and the error message. A subcommand's own parser, usage line and errors do not depend on the others.
    Building every subcommand would be most of argparse's work at every start.
    """
    parser = Parser(prog="preflight", description="Preflight checks for LLM model services on DataWorks "
                     "Serverless resource groups.", epilog="Exit codes: " + "; ".join(
                         f"{code} = {text}" for code, text in EXIT_CODES.items()))
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", parser_class=Parser)
    if command not in COMMANDS:  # not a command (an option, a typo): every subcommand, for the error message
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
        add_output_options(run)
        add_wait_options(run)
        add_from_options(run)

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
        add_output_options(demo)
        add_wait_options(demo)
        add_from_options(demo)

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
        add_output_options(ingest)

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
    """--scenario's help: naming every scenario only for `demo` and `simulate`, which load the simulator anyway."""
    if command not in ("demo", "simulate"):
        return "the named fault to inject (default: healthy)"
    from preflight.cli.demo import scenario_help

    return scenario_help()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list in (["--version"], ["-V"]):
        print(f"preflight {__version__}")
        return EXIT_OK
    try:
        return _main(args_list)
    finally:
        close_cloud_sessions()


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
        args.command_line = tuple(args_list)
        # Before any command can print: an AccessKey secret or STS token in the environment is masked everywhere.
        # With none set there is nothing to register, and a command that never masks anything (`list`) does
        # without the redactor's import.
        if any(os.environ.get(name) for name in SECRET_VARIABLES):
            from preflight.engine.redact import register_environment

            register_environment(os.environ)
        return _command(args.command)(args)
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


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    """The function that does a command's work, imported from its module only when that command runs."""
    if name in ("list", "explain"):
        from preflight.cli.catalogue import cmd_explain, cmd_list

        return cmd_list if name == "list" else cmd_explain
    if name in ("probe-script", "ingest"):
        from preflight.cli.innetwork import cmd_ingest, cmd_probe_script

        return cmd_probe_script if name == "probe-script" else cmd_ingest
    if name == "run":
        from preflight.cli.run import cmd_run

        return cmd_run
    if name == "demo":
        from preflight.cli.demo import cmd_demo

        return cmd_demo
    if name == "simulate":
        from preflight.cli.simulate import cmd_simulate

        return cmd_simulate
    if name == "bundle":
        from preflight.cli.bundle import cmd_bundle

        return cmd_bundle
    if name == "diff":
        from preflight.cli.diff import cmd_diff

        return cmd_diff
    if name == "init":
        from preflight.cli.init import cmd_init

        return cmd_init
    from preflight.cli.schema import cmd_schema

    return cmd_schema


__all__ = ["COMMANDS", "EXIT_CODES", "build_parser", "console", "main"]
