"""`preflight bundle`: one zip for a support ticket, with every secret masked and a list of what was masked."""

from __future__ import annotations

import datetime as dt
import json
import platform
import re
import sys
import zipfile
from pathlib import Path

from preflight import __version__
from preflight.errors import UsageError
from preflight.redact import MASK, REDACTOR

PACKAGES = ("dw-preflight", "alibabacloud-dataworks-public20240518", "alibabacloud-tea-openapi",
            "alibabacloud-credentials", "alibabacloud-pvtz20180101", "alibabacloud-privatelink20200415",
            "alibabacloud-vpc20160428", "httpx", "pyyaml", "rich", "dnspython")
_KEY_LINE = re.compile(r"^(?P<lead>\s*-?\s*api_key\s*:\s*)(?P<value>.+?)\s*$")
_ENV_REFERENCE = re.compile(r"^['\"]?\$\{[A-Za-z_][A-Za-z0-9_]*\}['\"]?$")


class Masker:
    """Masks text for the bundle and remembers where it did, never what."""

    def __init__(self) -> None:
        self.records: list[str] = []

    def text(self, name: str, text: str) -> str:
        before = dict(REDACTOR.hits)
        masked = REDACTOR.text(text)
        kinds = {label: count - before.get(label, 0) for label, count in REDACTOR.hits.items()
                 if count > before.get(label, 0)}
        patterns = masked.count(MASK) - sum(kinds.values())
        for label in sorted(kinds):
            self.records.append(f"{name}: a registered secret ({label.split(':')[0]})")
        if patterns > 0:
            self.records.append(f"{name}: {patterns} secret-shaped value(s) (keys, Authorization headers, tokens)")
        return masked

    def config(self, name: str, text: str) -> str:
        """The config with literal api_key values masked; ${ENV} references are kept as written."""
        lines = []
        for number, line in enumerate(text.splitlines(), start=1):
            match = _KEY_LINE.match(line)
            if match and not _ENV_REFERENCE.match(match.group("value")):
                self.records.append(f"{name}:{number}: a literal api_key")
                line = f"{match.group('lead')}{MASK}"
            lines.append(line)
        return self.text(name, "\n".join(lines) + "\n")


def versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def resolver_configuration(config_text: str | None) -> str:
    lines = ["# /etc/resolv.conf (nameserver, search and options lines)"]
    try:
        with open("/etc/resolv.conf", encoding="utf-8") as handle:
            lines += [line.rstrip() for line in handle if line.split()[:1] in (["nameserver"], ["search"],
                                                                               ["options"])]
    except OSError as exc:
        lines.append(f"(cannot be read: {exc.strerror})")
    if config_text is not None:
        match = re.search(r"^dns:.*(?:\n[ \t]+.*)*", config_text, re.MULTILINE)
        lines += ["", "# the config's dns section", match.group(0) if match else "(none: the system resolver)"]
    return "\n".join(lines) + "\n"


def build_bundle(output: Path, report_dir: Path, config_path: Path | None) -> tuple[Path, list[str]]:
    """Write the zip; return its path and what REDACTIONS.txt says."""
    if not report_dir.is_dir() or not any(report_dir.glob("report.*")):
        raise UsageError(f"{report_dir} holds no reports: run `preflight run` (or `preflight demo`) first, or pass "
                         "--report-dir")
    masker = Masker()
    files: dict[str, str] = {}
    for path in sorted(report_dir.iterdir()):
        if path.is_file() and path.suffix in (".json", ".xml", ".md", ".html"):
            files[f"reports/{path.name}"] = masker.text(f"reports/{path.name}",
                                                        path.read_text(encoding="utf-8", errors="replace"))
    config_text = None
    if config_path is not None:
        try:
            config_text = config_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise UsageError(f"{config_path}: cannot be read: {exc.strerror or exc}") from None
        files[f"config/{config_path.name}"] = masker.config(f"config/{config_path.name}", config_text)
    environment = {"tool": __version__, "python": sys.version.split()[0], "implementation":
                   platform.python_implementation(), "platform": platform.platform(), "machine": platform.machine(),
                   "packages": versions(), "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    files["environment.json"] = masker.text("environment.json", json.dumps(environment, indent=2) + "\n")
    files["resolver.txt"] = masker.text("resolver.txt", resolver_configuration(
        masker.config("resolver.txt", config_text) if config_text is not None else None))
    records = masker.records or ["nothing was masked"]
    files["REDACTIONS.txt"] = ("What was masked in this bundle, and where (the values themselves are not here):\n"
                               + "".join(f"- {record}\n" for record in records))
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return output, records


def default_name() -> Path:
    return Path(f"preflight-bundle-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.zip")


__all__ = ["Masker", "build_bundle", "default_name", "versions"]
