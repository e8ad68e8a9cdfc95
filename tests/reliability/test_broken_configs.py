"""Broken configs: every way a file can be wrong is one exact, readable line and exit 2, never a traceback."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from preflight.cli.main import main
from preflight.config import read_config_text
from preflight.errors import ConfigError

TOO_DEEP = "the document nests too deeply to be a config (more than 64 levels)"


def billion_laughs(levels: int = 9) -> bytes:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return ("\n".join(lines) + "\nregion: cn-beijing\ntargets: [{name: a}]\n").encode()


def run(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["run", "-c", str(path), "--no-reports", "--only", "config.valid"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.err


@pytest.mark.parametrize(("content", "message"), [
    (b"", "the file is empty; see the README for a minimal config"),
    (b"# nothing but a comment\n", "the file is empty; see the README for a minimal config"),
    (b"\xef\xbb\xbf", "the file is empty; see the README for a minimal config"),
    (b"\x00\x01\x02binary\x7fELF", "is a binary file, not YAML"),
    (b"region: cn-beijing\n\xff\xfe targets: []\n", "2: is not UTF-8 text (byte 19)"),
    (b"region: caf\xe9\n", "1: is not UTF-8 text (byte 11)"),
    (b"x" * (1 << 20) + b"y", "is larger than 1024 KiB; is this the right file?"),
    (billion_laughs(), "1: the document has more than 20000 values (an alias bomb?)"),
    (b"region: cn-beijing\ntargets: " + b"[" * 3000 + b"]" * 3000 + b"\n", f"2: {TOO_DEEP}"),
    (b"region: cn-beijing\ntargets:\n" + b"".join(b"  " * depth + b"-\n" for depth in range(1, 100)),
     f"67: {TOO_DEEP}"),
    (b"region: cn-beijing\ntargets:\n  - name: a\n    servces: []\n",
     "4: targets[0].servces: unknown field; did you mean 'services'?"),
    (b"region: cn-beijing\nregion: cn-hangzhou\ntargets: [{name: a}]\n", "2: region: appears twice"),
    (b"region: [\n", "2: not valid YAML: did not find expected node content"),
    (b"just a sentence\n", "1: expected a mapping, got 'just a sentence'"),
    (b"region: cn-beijing\ntargets: [{name: a, services: [{name: s, kind: completion, endpoint: x, "
     b"api_key: '${DW_SURELY_UNSET_0}'}]}]\n",
     "2: targets[0].services[0].api_key: environment variable DW_SURELY_UNSET_0 is not set"),
    (b"region: cn-beijing\ntargets:\n  - name: a\n    services:\n      - {name: s, kind: embedding, endpoint: x,\n"
     b"         expect: {dimensions: \"1024\"}}\n",
     "6: targets[0].services[0].expect.dimensions: expected a whole number, got the text '1024'; write 1024 "
     "without quotes"),
    (b"region: cn-beijing\ntargets:\n  - name: a\n    services:\n      - {name: s, kind: completion, endpoint: x,\n"
     b"         max_tokens: \"eight\"}\n",
     "6: targets[0].services[0].max_tokens: expected a whole number, got the text 'eight'"),
])
def test_each_broken_file_has_its_exact_message(content: bytes, message: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "preflight.yaml"
    path.write_bytes(content)
    separator = ":" if message[0].isdigit() else ": "
    assert run(path, capsys) == (2, f"preflight: {path}{separator}{message}\n")


def test_a_directory_a_missing_file_and_a_dangling_link(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, capsys) == (2, f"preflight: {tmp_path}: is a directory, not a config file\n")
    missing = tmp_path / "nope.yaml"
    assert run(missing, capsys) == (2, f"preflight: {missing}: no such file; pass -c FILE or create preflight.yaml\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(tmp_path / "gone.yaml")
    assert run(link, capsys) == (2, f"preflight: {link}: no such file; pass -c FILE or create preflight.yaml\n")


def test_an_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The tests run as root, and root reads a file of mode 000. A UNIX socket cannot be opened as a file by
    # anyone (ENXIO), which reaches the same OSError path; a FIFO would block instead.
    path = tmp_path / "preflight.yaml"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        assert run(path, capsys) == (2, f"preflight: {path}: cannot be read: No such device or address\n")


def test_a_file_without_permission_for_an_ordinary_user(tmp_path: Path) -> None:
    path = tmp_path / "preflight.yaml"
    path.write_text("region: cn-beijing\n")
    path.chmod(0)
    if os.geteuid() == 0:  # root ignores the mode; prove the same path with a link loop, which fails for root too
        path.unlink()
        path.symlink_to(path)
        with pytest.raises(ConfigError) as caught:
            read_config_text(path)
        assert str(caught.value) == f"{path}: cannot be read: Too many levels of symbolic links"
    else:
        with pytest.raises(ConfigError) as caught:
            read_config_text(path)
        assert str(caught.value) == f"{path}: cannot be read: Permission denied"


def test_an_unbraced_reference_is_a_note_of_the_run_that_names_file_line_and_spelling(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "preflight.yaml"
    path.write_text("region: cn-beijing\ntargets:\n  - name: a\n    services:\n      - name: s\n"
                    "        kind: completion\n        endpoint: http://127.0.0.1:9\n        api_key: $DW_QWEN_KEY\n")
    code, _ = run(path, capsys)
    assert code == 0
    capsys.readouterr()
    assert main(["run", "-c", str(path), "--no-reports", "--only", "config.valid", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert f"{path}:8: targets[0].services[0].api_key: an environment reference without braces is taken " \
           "literally (only the ${NAME} spelling is expanded); to read the variable, write ${DW_QWEN_KEY}" \
        in report["notes"]
    (result,) = report["results"]
    assert result["status"] == "warn" and "s: api_key: ${DW_QWEN_KEY}" in result["remediation"]
