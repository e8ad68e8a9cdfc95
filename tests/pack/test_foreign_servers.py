"""`preflight run --endpoint` against OpenAI-compatible servers we did not write, on real loopback sockets.

Each server answers the request without a key its own way (401, 403, 404, 400, a plain 500, 200, a proxy's
page) and serves keyed requests well, or answers the keyed request its own way; the verdicts follow the issue's
rule: any answer of the service proves it reachable, the keyed request decides whether it works.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from preflight.cli.main import main

KEY = "sk-foreign-secret-0123456789"
MODEL = "m"


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    server: str = "uvicorn"


@dataclass
class Behaviour:
    """How the server answers GET /v1/models without a key, and with one."""

    unauthenticated: Answer
    keyed_models: Answer = field(default_factory=lambda: Answer(200, json.dumps(
        {"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode()))
    usage: bool = True  # whether a completion's answer reports the tokens it spent
    seen: list[tuple[str, str, bool]] = field(default_factory=list)  # method, path, sent the key


def handler_for(behaviour: Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def version_string(self) -> str:
            return "uvicorn"

        def answer(self, answer: Answer) -> None:
            self.send_response(answer.status)
            self.send_header("Server", answer.server)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def keyed(self) -> bool:
            sent = self.headers.get("Authorization")
            behaviour.seen.append((self.command, self.path, sent is not None))
            return sent == f"Bearer {KEY}"

        def do_GET(self) -> None:
            if self.path != "/v1/models":
                self.answer(Answer(404, b'{"detail": "Not Found"}'))
            elif not self.keyed():
                self.answer(behaviour.unauthenticated)
            else:
                self.answer(behaviour.keyed_models)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if not self.keyed():
                self.answer(behaviour.unauthenticated)
            elif body.get("stream"):
                self.stream()
            else:
                usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5} if behaviour.usage else None
                self.answer(Answer(200, json.dumps({
                    "choices": [{"index": 0, "text": "OK.", "finish_reason": "stop"}], "usage": usage}).encode()))

        def stream(self) -> None:
            events = [{"choices": [{"index": 0, "text": piece, "finish_reason": finish}]}
                      for piece, finish in (("O", None), ("K", None), (".", "stop"))]
            data = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(behaviour: Behaviour) -> int:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(behaviour))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def run_against(port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
                ) -> tuple[int, dict[str, dict[str, Any]]]:
    monkeypatch.setenv("FOREIGN_KEY", KEY)
    code = main(["run", "--endpoint", f"http://127.0.0.1:{port}", "--api-key-env", "FOREIGN_KEY",
                 "--kind", "completion", "--model", MODEL, "--auth", "bearer", "--format", "json",
                 "--no-reports", "--timeout", "30", *args])
    out = capsys.readouterr().out
    assert KEY not in out
    return code, {result["check"]: result for result in json.loads(out)["results"]}


PROXY_PAGE = Answer(502, b"<html><head><title>502 Bad Gateway</title></head><body><center>502 Bad Gateway"
                         b"</center><hr><center>nginx</center></body></html>", "text/html", "nginx")
UNAUTHENTICATED = [
    ("401", Answer(401, b'{"error": {"message": "Missing API key"}}'), "pass", "reachable and guarded: HTTP 401"),
    ("403", Answer(403, b'{"detail": "Forbidden"}'), "pass", "reachable and guarded: HTTP 403"),
    ("404", Answer(404, b'{"detail": "Not Found"}'), "pass", "reachable: HTTP 404 without a key; the keyed request"),
    ("400", Answer(400, b'{"error": "Authorization header required"}'), "pass", "reachable: HTTP 400 without a key"),
    ("500", Answer(500, b"Internal Server Error", "text/plain"), "pass",
     "reachable: HTTP 500 without a key; the keyed request decides"),
    ("200", Answer(200, b'{"object": "list", "data": [{"id": "m"}]}'), "warn", "200 without a key"),
    ("proxy", PROXY_PAGE, "fail", "nginx answered HTTP 502 with an HTML error page"),
]


@pytest.mark.parametrize(("answer", "verdict", "words"), [case[1:] for case in UNAUTHENTICATED],
                         ids=[case[0] for case in UNAUTHENTICATED])
def test_any_answer_of_the_service_lets_the_keyed_request_decide(answer: Answer, verdict: str, words: str,
                                                                  serve: Any, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    behaviour = Behaviour(answer)
    code, results = run_against(serve(behaviour), monkeypatch, capsys)
    http = results["endpoint.http"]
    assert http["status"] == verdict and words in http["summary"], http
    assert http["evidence"]["status"] == answer.status and http["evidence"]["server"] == answer.server
    assert http["evidence"]["body_excerpt"] == answer.body.decode()
    data = ("auth.key_valid", "model.listed", "inference.completion", "inference.stream")
    if verdict == "fail":
        assert code == 1 and all(results[c]["status"] == "skip" for c in data), results
        assert not any(keyed for _, _, keyed in behaviour.seen)  # the key never went to what answered instead
    else:
        assert code == 0 and all(results[c]["status"] == "pass" for c in data), results
        assert ("GET", "/v1/models", True) in behaviour.seen


KEYED = [
    ("401", Answer(401, b'{"error": "invalid key"}'), "fail", "the service refused the key", "API keys"),
    ("403", Answer(403, b'{"error": "key disabled"}'), "fail", "the service refused the key", "API keys"),
    ("500", Answer(500, b'{"error": "worker crashed"}'), "fail", "HTTP 500: the service is unhealthy", "replicas"),
    ("404", Answer(404, b'{"detail": "Not Found"}'), "warn", "proved by the inference checks", "inference checks"),
]


@pytest.mark.parametrize(("answer", "verdict", "words", "fix"), [case[1:] for case in KEYED],
                         ids=[case[0] for case in KEYED])
def test_the_keyed_request_is_judged_alone(answer: Answer, verdict: str, words: str, fix: str, serve: Any,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    behaviour = Behaviour(Answer(500, b"Internal Server Error", "text/plain"), keyed_models=answer)
    code, results = run_against(serve(behaviour), monkeypatch, capsys)
    assert results["endpoint.http"]["status"] == "pass"
    key_valid = results["auth.key_valid"]
    assert key_valid["status"] == verdict and words in key_valid["summary"] and fix in key_valid["remediation"]
    inference = [results[c]["status"] for c in ("inference.completion", "inference.stream")]
    if verdict == "warn":  # a server without a models list: the inference checks prove the key instead
        assert code == 0 and inference == ["pass", "pass"] and results["model.listed"]["status"] == "skip"
    else:
        assert code == 1 and inference == ["skip", "skip"]


@pytest.mark.parametrize(("usage", "spent"), [(True, "5"), (False, "≈31")])
def test_the_budget_counts_an_answer_without_usage_at_its_upper_bound(usage: bool, spent: str, serve: Any,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """One check at a time, so the completion spends before the stream asks the budget."""
    behaviour = Behaviour(Answer(401, b"{}"), usage=usage)
    code, results = run_against(serve(behaviour), monkeypatch, capsys, "--max-tokens-budget", "1",
                                "--concurrency", "1")
    completion, stream = results["inference.completion"], results["inference.stream"]
    assert code == 0 and completion["status"] == "pass" and completion["tokens"] == int(spent.lstrip("≈"))
    assert completion["evidence"]["tokens_estimated"] is (not usage)
    assert stream["status"] == "skip"
    assert stream["summary"] == f"the token budget is spent ({spent} of 1 tokens, --max-tokens-budget)"
