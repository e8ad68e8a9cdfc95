"""https with a certificate nobody trusts fails with verification on; --ca-bundle trusts a private CA."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest
import trustme

from preflight.cli.main import main
from preflight.simulator.model_service import ModelService
from preflight.simulator.scenarios import World

QWEN = World().models[0]


def test_self_signed_fails_and_a_private_ca_is_trusted(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    authority = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert(QWEN.host).configure_cert(context)
    service = ModelService(World(), ssl_context=context)
    port = service.start()
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("DW_TLS_KEY", QWEN.api_key)
    config = tmp_path / "preflight.yaml"
    config.write_text(f"""region: cn-beijing
dns: {{resolve: {{"{QWEN.host}:{port}": 127.0.0.1}}}}
targets:
  - name: tls
    services:
      - {{name: qwen, kind: completion, endpoint: "https://{QWEN.host}:{port}", api_key: "${{DW_TLS_KEY}}",
         model: {QWEN.model}}}
""")
    try:
        untrusted = main(["run", "-c", str(config), "--only", "auth.key_valid", "--format", "json", "--no-reports"])
        first = json.loads(capsys.readouterr().out)
        trusted = main(["run", "-c", str(config), "--only", "auth.key_valid", "--format", "json", "--no-reports",
                        "--ca-bundle", str(ca_file)])
        second = json.loads(capsys.readouterr().out)
    finally:
        service.stop()
    http = next(r for r in first["results"] if r["check"] == "endpoint.http")
    assert untrusted == 1 and http["status"] == "fail" and "TLS verification failed" in http["summary"]
    assert "--ca-bundle" in http["remediation"]
    statuses = {r["check"]: r["status"] for r in second["results"]}
    assert trusted == 0 and statuses["endpoint.http"] == "pass" and statuses["auth.key_valid"] == "pass"
    assert statuses["endpoint.url"] == "warn"  # https on a DataWorks domain: the real service is plain HTTP


def test_a_tls_connection_verified_for_one_name_never_carries_another_names_request() -> None:
    """Two https services at one address: the second name's request gets its own connection and its own
    verification, which fails when the certificate is only the first name's."""
    import asyncio

    from preflight.config import Config, ServiceConfig
    from preflight.probe.local import LocalCollector, build_client

    authority = trustme.CA()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert("good.example.com").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    connections: list[object] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            writer.close()

    async def go() -> tuple[dict[str, object], dict[str, object]]:
        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        config = Config(region="cn-beijing", targets=())
        dns = {"answers": ["127.0.0.1"]}
        try:
            async with build_client(config, verify=client_context) as client:
                collector = LocalCollector(config, client)
                good = await collector.http(ServiceConfig(name="good", kind="completion",
                                                          endpoint=f"https://good.example.com:{port}"), dns)
                other = await collector.http(ServiceConfig(name="other", kind="completion",
                                                           endpoint=f"https://other.example.com:{port}"), dns)
                return good, other
        finally:
            server.close()

    good, other = asyncio.run(go())
    assert good["status"] == 401 and good["error"] is None
    assert other["status"] is None and other["error"] == "tls", other
    assert "other.example.com" in str(other["detail"])
