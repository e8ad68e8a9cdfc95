"""The model service's answers that are not one JSON body: event streams, and the broken transports its faults
call for (a head sent byte by byte, a connection reset midway)."""

from __future__ import annotations

import json
import socket
import struct
import threading
from typing import Any

from preflight.simulator.scenarios import SimModel
from preflight.simulator.server import LoopbackHandler, LoopbackServer

STREAM_CHUNKS = ("OK", ",", " ready", ".")


class StreamingServer(LoopbackServer):
    """What the streaming answers read from their server: the scenario's faults and the event stop() sets."""

    faults: frozenset[str]
    stopping: threading.Event


class StreamingHandler(LoopbackHandler):
    """The streamed and hostile answers of the model service's handler."""

    server: StreamingServer

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless the server stops; False when it stopped."""
        return not self.server.stopping.wait(seconds)

    def _event(self, model: SimModel, text: str, chat: bool, finish: str | None = None) -> bytes:
        if chat:
            choice: dict[str, Any] = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
            payload = {"id": "chatcmpl-sim", "object": "chat.completion.chunk", "model": model.model,
                       "choices": [choice]}
        else:
            payload = {"id": "cmpl-sim", "object": "text_completion", "model": model.model,
                       "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}]}
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _stream(self, model: SimModel, body: dict[str, Any], *, chat: bool) -> None:
        faults = self.server.faults
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            if "stream-endless" in faults:
                event = self._event(model, "more", chat)
                burst = event * 64
                while not self.server.stopping.is_set():
                    self._chunk(burst)
                return
            if "slow" in faults and not self._sleep(1.5):
                return
            events = [self._event(model, piece, chat) for piece in STREAM_CHUNKS]
            events[-1] = self._event(model, STREAM_CHUNKS[-1], chat, "stop")
            if "stream-malformed" in faults:
                events = [b'data: {"choices": [{"text": "OK"\n\n', b"data: {not json}\n\n"]
            if "stream-stall" in faults:
                self._chunk(events[0])
                self.server.stopping.wait(3600)
                return
            tail = [] if "stream-no-done" in faults else [b"data: [DONE]\n\n"]
            if "stream-buffered" in faults:
                self._sleep(0.3)
                self._chunk(b"".join(events + tail))
            else:
                for event in events + tail:
                    self._chunk(event)
                    self._sleep(0.01)
            self._chunk(b"")
        except OSError:  # the client went away, as clients cutting an endless stream do
            self.close_connection = True
        finally:
            if self.server.stopping.is_set():
                # A stream cut short by stop() is unterminated; closing is what tells the client it is over,
                # where keep-alive would leave it waiting for the rest.
                self.close_connection = True

    def _trickle(self, payload: bytes) -> None:
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
                ).encode()
        try:
            for byte in head:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                if not self._sleep(1.0):
                    return
            self.wfile.write(payload)
        except OSError:
            pass
        self.close_connection = True

    def _reset_after_half(self, payload: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2])
        self.wfile.flush()
        # SO_LINGER with a zero timeout turns close() into a TCP reset.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True


__all__ = ["STREAM_CHUNKS", "StreamingHandler", "StreamingServer"]
