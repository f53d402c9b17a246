"""A local HTTP server that speaks the part of Slack's Web API the portal uses (chat.postMessage),
and receives what the portal posts to a slash command's response_url. Runs in a thread on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclasses.dataclass
class Scripted:
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


class FakeSlack:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []  # chat.postMessage calls, with their auth header
        self.responses: list[dict[str, Any]] = []  # bodies posted to response URLs
        self.script: list[Scripted] = []  # answers for the next chat.postMessage calls, in order
        self.response_arrived = threading.Event()
        self._lock = threading.Lock()
        self._ts = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.startswith("/response/"):
                    with fake._lock:
                        fake.responses.append(json.loads(raw))
                    fake.response_arrived.set()
                    self._answer(Scripted(200, None))
                elif self.path == "/api/chat.postMessage":
                    self._answer(fake._post_message(raw, self.headers.get("Authorization", "")))
                else:
                    self._answer(Scripted(404, {"ok": False, "error": "unknown_method"}))

            def _answer(self, scripted: Scripted) -> None:
                body = b"ok" if scripted.body is None else json.dumps(scripted.body).encode()
                self.send_response(scripted.status)
                self.send_header(
                    "Content-Type", "application/json" if scripted.body is not None else "text/plain"
                )
                self.send_header("Content-Length", str(len(body)))
                for name, value in scripted.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str = "cmd") -> str:
        return f"http://127.0.0.1:{self.port}/response/{name}"

    def _post_message(self, raw: bytes, auth: str) -> Scripted:
        payload = json.loads(raw)
        with self._lock:
            self.messages.append({**payload, "authorization": auth})
            if self.script:
                return self.script.pop(0)
            if not auth.startswith("Bearer ") or not payload.get("channel"):
                return Scripted(
                    200, {"ok": False, "error": "not_authed" if not auth else "channel_not_found"}
                )
            self._ts += 1
            return Scripted(
                200, {"ok": True, "channel": payload["channel"], "ts": f"1700000000.{self._ts:06d}"}
            )

    def start(self) -> FakeSlack:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
