"""`preflight bundle`: one zip for a support ticket, with every secret masked and a list of what was masked."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import sys
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from preflight import __version__
from preflight.engine.redact import MASK, REDACTOR, SHAPE_KINDS, register_secrets
from preflight.errors import EXIT_OK, PreflightError, UsageError

PACKAGES = ("dw-preflight", "alibabacloud-dataworks-public20240518", "alibabacloud-tea-openapi",
            "alibabacloud-credentials", "alibabacloud-pvtz20180101", "alibabacloud-privatelink20200415",
            "alibabacloud-vpc20160428", "requests", "certifi", "pyyaml", "rich", "dnspython", "httpx")
REPORT_SUFFIXES = (".json", ".xml", ".md", ".html", ".txt", ".log")
_SECRET_KEY = re.compile(r"(?i)(api[_-]?key|secret|security[_-]?token|sts[_-]?token|password|passwd|authorization)$")
_KEY_LINE = re.compile(r"^(?P<lead>\s*-?\s*[\"']?(?P<key>[A-Za-z_-]+)[\"']?\s*:\s*)(?P<value>\S.*?)\s*$")
_ENV_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_QUOTED_REFERENCE = re.compile(r"^['\"]?\$\{[A-Za-z_][A-Za-z0-9_]*\}['\"]?$")


class Masker:
    """Masks text for the bundle and remembers where it did, never what."""

    def __init__(self) -> None:
        self.records: list[str] = []

    def text(self, name: str, text: str) -> str:
        masked, found = REDACTOR.scan(text)
        for kind in sorted(found):
            what = kind if kind in SHAPE_KINDS else f"the registered secret {kind}"
            self.records.append(f"{name}: {what} ({found[kind]}x)")
        return masked

    def config(self, name: str, text: str) -> str:
        """The config with literal secret values masked; ${ENV} references are kept as written."""
        spans = _secret_spans(text)
        if spans is None:  # not YAML we can read: fall back to masking `api_key: value` lines
            return self.text(name, self._config_lines(name, text))
        for start, end, _, _ in reversed(spans):  # from the end, so earlier offsets stay valid
            text = text[:start] + f"'{MASK}'" + text[end:]
        self.records += [f"{name}:{line}: {field} (a value written in the file)" for _, _, line, field in spans]
        return self.text(name, text)

    def _config_lines(self, name: str, text: str) -> str:
        lines = []
        for number, line in enumerate(text.splitlines(), start=1):
            match = _KEY_LINE.match(line)
            if match and _SECRET_KEY.search(match.group("key")) and not _QUOTED_REFERENCE.match(match.group("value")):
                self.records.append(f"{name}:{number}: {match.group('key')} (a value written in the file)")
                line = f"{match.group('lead')}'{MASK}'"
            lines.append(line)
        return "\n".join(lines) + "\n"


def _compose(text: str) -> Any:
    """The YAML node tree (pure-Python loader, whose marks are character offsets), or None."""
    import yaml

    try:
        loader = yaml.SafeLoader(text)
        try:
            return loader.get_single_node()
        finally:
            loader.dispose()
    except (yaml.YAMLError, RecursionError, ValueError):
        return None


def _walk(root: Any) -> Iterator[tuple[str, Any, Any]]:
    """Every (field path, key node, value node) pair of every mapping, each node visited once."""
    import yaml

    stack: list[tuple[str, Any]] = [("", root)]
    seen: set[int] = set()
    while stack:
        path, node = stack.pop()
        if id(node) in seen:  # aliases point back at nodes already walked
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = f"{path}.{key.value}" if path else str(key.value)
                yield sub, key, value
                stack.append((sub, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(node.value))


def _secret_spans(text: str) -> list[tuple[int, int, int, str]] | None:
    """Where literal secret values sit in the config text: (start, end, line, field), in text order."""
    import yaml

    root = _compose(text)
    if root is None:
        return None
    spans = []
    for path, key, value in _walk(root):
        if isinstance(key, yaml.ScalarNode) and _SECRET_KEY.search(str(key.value)) and \
                isinstance(value, yaml.ScalarNode) and value.value and not _ENV_REFERENCE.match(value.value):
            spans.append((value.start_mark.index, value.end_mark.index, value.start_mark.line + 1, path))
    return sorted(spans)


def versions() -> dict[str, str]:
    """The installed versions of this tool, the SDKs and the libraries a run depends on."""
    from importlib import metadata

    names = set(PACKAGES)
    for distribution in metadata.distributions():  # every Alibaba Cloud SDK part, whichever are installed
        name = str(distribution.metadata["Name"] or "")
        if name.lower().startswith("alibabacloud"):
            names.add(name.lower().replace("_", "-"))
    found = {}
    for package in sorted(names):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def resolver_configuration(dns_section: str | None, resolv_conf: Path = Path("/etc/resolv.conf")) -> str:
    """The system resolver's nameserver, search and options lines, and the config's dns section."""
    lines = [f"# {resolv_conf} (nameserver, search and options lines)"]
    try:
        with resolv_conf.open(encoding="utf-8", errors="replace") as handle:
            lines += [line.rstrip() for line in handle if line.split()[:1] in (["nameserver"], ["search"],
                                                                               ["options"])]
    except OSError as exc:
        lines.append(f"(cannot be read: {exc.strerror or exc})")
    lines += ["", "# the config's dns section", dns_section or "(none: the system resolver is asked)"]
    return "\n".join(lines) + "\n"


def dns_section(text: str) -> str | None:
    """The text of the config's top-level dns value, as written."""
    import yaml

    root = _compose(text)
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "dns":
                return "dns: " + text[value.start_mark.index:value.end_mark.index].strip()
    match = re.search(r"^dns:.*(?:\n[ \t]+.*)*", text, re.MULTILINE)
    return match.group(0) if match else None


def environment() -> dict[str, Any]:
    return {"tool": __version__, "python": sys.version.split()[0], "implementation": platform.python_implementation(),
            "executable": sys.executable, "platform": platform.platform(), "machine": platform.machine(),
            "packages": versions(), "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def build_bundle(output: Path, report_dir: Path, config_path: Path | None) -> tuple[Path, list[str]]:
    """Write the zip; return its path and what REDACTIONS.txt says."""
    if not report_dir.is_dir():
        raise UsageError(f"{report_dir}: no report directory; run `preflight run` (or `preflight demo`) first, "
                         "or pass --report-dir DIR")
    reports = sorted(path for path in report_dir.iterdir() if path.is_file() and path.suffix in REPORT_SUFFIXES)
    if not reports:
        raise UsageError(f"{report_dir}: holds no reports; run `preflight run` (or `preflight demo`) first, "
                         "or pass --report-dir DIR")
    masker = Masker()
    files: dict[str, str] = {}
    for path in reports:
        text = path.read_text(encoding="utf-8", errors="replace")
        if MASK in text:
            masker.records.append(f"reports/{path.name}: {text.count(MASK)} value(s) masked when the run wrote it")
        files[f"reports/{path.name}"] = masker.text(f"reports/{path.name}", text)
    config_text = None
    if config_path is not None:
        try:
            config_text = config_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise UsageError(f"{config_path}: cannot be read: {exc.strerror or exc}") from None
        files[f"config/{config_path.name}"] = masker.config(f"config/{config_path.name}", config_text)
    files["environment.json"] = masker.text("environment.json", json.dumps(environment(), indent=2) + "\n")
    section = dns_section(config_text) if config_text is not None else None
    files["resolver.txt"] = masker.text("resolver.txt", resolver_configuration(section))
    records = masker.records or ["nothing was masked"]
    files["REDACTIONS.txt"] = REDACTOR.text(
        "What was masked in this bundle, and where (the values themselves are not in it):\n"
        + "".join(f"- {record}\n" for record in records))
    if output.is_dir():
        output = output / default_name()
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    partial.replace(output)  # a bundle is either complete or not there
    return output, records


def register_config_secrets(config_path: Path, environ: Mapping[str, str]) -> None:
    """Knowing the config's keys lets the bundle mask them wherever a report or a server's echo shows them."""
    from preflight.config import load_config

    # A config that does not load is still bundled, masked by its secret fields and the secret shapes.
    with contextlib.suppress(PreflightError):
        register_secrets(load_config(config_path, environ).secrets())


def bundle_command(output: str | None, report_dir: str, config: str | None) -> Path:
    """What `preflight bundle` does: find the config, register its secrets, write the zip."""
    config_path: Path | None = Path(config) if config else Path("preflight.yaml")
    assert config_path is not None
    if not config_path.is_file():
        if config:
            raise UsageError(f"{config_path}: no such file")
        config_path = None
    if config_path is not None:
        register_config_secrets(config_path, os.environ)
    path, _ = build_bundle(Path(output) if output else default_name(), Path(report_dir), config_path)
    return path


def default_name() -> Path:
    return Path(f"preflight-bundle-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.zip")


def cmd_bundle(args: argparse.Namespace) -> int:
    print(bundle_command(args.output, args.report_dir, args.config))
    return EXIT_OK


__all__ = ["Masker", "build_bundle", "bundle_command", "cmd_bundle", "default_name", "dns_section",
           "resolver_configuration", "versions"]
