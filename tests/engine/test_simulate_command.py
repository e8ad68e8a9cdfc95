"""`preflight simulate` as a person starts it: what listens where, a request by hand that works, a clean stop."""

from __future__ import annotations

import http.client
import json
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from preflight.cli.main import main
from preflight.simulator.scenarios import SCENARIOS


def free_ports(count: int) -> list[int]:
    """Loopback ports free for TCP and UDP right now (bound together, then released)."""
    sockets, ports = [], []
    while len(ports) < count:
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(("127.0.0.1", port))
        except OSError:
            tcp.close()
            udp.close()
            continue
        sockets += [tcp, udp]
        ports.append(port)
    for held in sockets:
        held.close()
    return ports


def read_banner(process: subprocess.Popen[str]) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        assert line, f"the simulator ended early: {''.join(lines)}"
        lines.append(line.rstrip("\n"))
        if line.startswith("# Ctrl-C or SIGTERM to stop"):
            return lines
    raise AssertionError("no stop line within 30 s")


def test_simulate_says_what_listens_where_answers_the_printed_request_and_stops_on_sigterm(tmp_path: Path) -> None:
    openapi, model, dns = free_ports(3)
    process = subprocess.Popen([sys.executable, "-m", "preflight", "simulate", "--openapi-port", str(openapi),
                                "--model-port", str(model), "--dns-port", str(dns)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    try:
        lines = read_banner(process)
        text = "\n".join(lines)
        assert f"#   OpenAPI        http://127.0.0.1:{openapi}   " in text
        assert f"#   model service  http://127.0.0.1:{model}   every model domain; the Host header picks" in text
        assert f"#   DNS            127.0.0.1:{dns} UDP+TCP  " in text
        env_file = Path(re.search(r"^# environment \(API keys, AccessKey pair\): (\S+)", text, re.M).group(1))
        config_file = Path(re.search(r"^# config \(printed below\): (\S+)", text, re.M).group(1))
        assert f"set -a; . {env_file}; set +a; preflight run -c {config_file}" in text
        environ = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        assert config_file.read_text() in text + "\n"  # the printed config is the file's
        # The printed curl line, carried out as curl would: --resolve HOST:PORT:ADDRESS, the header, the URL.
        curl = next(line for line in lines if line.startswith("#   curl "))[len("#   "):]
        words = shlex.split(curl.replace("$DW_DEMO_QWEN_KEY", environ["DW_DEMO_QWEN_KEY"]))
        host, port, address = words[words.index("--resolve") + 1].rsplit(":", 2)
        name, _, value = words[words.index("-H") + 1].partition(": ")
        url = words[-1]
        assert url == f"http://{host}:{port}/v1/models" and int(port) == model and address == "127.0.0.1"
        connection = http.client.HTTPConnection(address, int(port), timeout=5)
        connection.request("GET", "/v1/models", headers={"Host": f"{host}:{port}", name: value})
        answer = connection.getresponse()
        body = json.loads(answer.read())
        connection.close()
        assert answer.status == 200 and body["data"][0]["id"] == "qwen3-1.7b", body
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=15)
    assert process.returncode == 0, errors
    assert not env_file.exists() and not config_file.exists()  # temporary: removed on stop


def test_a_port_in_use_is_a_usage_error_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["simulate", "--model-port", str(port)]) == 2
    assert capsys.readouterr().err == (f"preflight: the simulator cannot listen on 127.0.0.1 (--model-port {port}): "
                                       "Address already in use\n")
    assert main(["simulate", "--dns-port", "70000"]) == 2
    assert "--dns-port: expected a port from 0 (any free one) to 65535, got 70000" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["simulate", "demo"])
def test_every_option_has_help_and_scenario_names_every_scenario(command: str) -> None:
    from preflight.cli.main import build_parser

    parser = build_parser(command)
    sub = next(action for action in parser._actions if action.dest == "command").choices[command]  # type: ignore[union-attr]
    for action in sub._actions:
        assert action.help, f"{command} {action.option_strings} has no help"
    scenario = next(action for action in sub._actions if action.dest == "scenario")
    assert all(name in str(scenario.help) for name in SCENARIOS)


def test_simulate_serves_regions_with_their_endpoints_and_answers_429_past_the_rate_limit(tmp_path: Path) -> None:
    from alibabacloud_dataworks_public20240518 import models
    from alibabacloud_dataworks_public20240518.client import Client
    from alibabacloud_tea_openapi.exceptions import ClientException
    from alibabacloud_tea_openapi.utils_models import Config

    from preflight.config import parse_config

    config_file = tmp_path / "sim.yaml"
    process = subprocess.Popen([sys.executable, "-m", "preflight", "simulate", "--services", "4", "--targets", "2",
                                "--regions", "2", "--rate-limit", "1", "--config-out", str(config_file)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    try:
        text = "\n".join(read_banner(process))
        env_file = Path(re.search(r"^# environment \(API keys, AccessKey pair\): (\S+)", text, re.M).group(1))
        environ = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        config = parse_config(config_file.read_text(), "sim.yaml", environ)
        assert [config.region_of(target) for target in config.targets] == ["cn-beijing", "cn-hangzhou"]
        endpoint = config.cloud.endpoint_for("cn-hangzhou")
        assert endpoint is not None and endpoint != config.cloud.endpoint_for("cn-beijing")
        client = Client(Config(access_key_id=environ["ALIBABA_CLOUD_ACCESS_KEY_ID"],
                               access_key_secret=environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"], endpoint=endpoint,
                               protocol="http", region_id="cn-hangzhou"))
        request = models.GetResourceGroupRequest(id=config.targets[1].resource_group)
        assert client.get_resource_group(request).body.resource_group
        with pytest.raises(ClientException) as caught:
            client.get_resource_group(request)
        assert (caught.value.code, caught.value.status_code) == ("Throttling.User", 429)
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=15)
    assert process.returncode == 0, errors


def test_bad_rate_limits_and_regions_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--rate-limit", "0"]) == 2
    assert "--rate-limit: expected a positive number of calls per second, got 0" in capsys.readouterr().err
    assert main(["simulate", "--regions", "3"]) == 2
    assert "--regions: only with --services" in capsys.readouterr().err
