"""A local chat-completions server that judges like GPT-4o would, for the evaluation tests.

It speaks POST /v1/chat/completions with a bearer key; the rating is chosen by QID-n-Tm tags in the
prompt (SCORES), or DEFAULT_SCORE for prompts without tags.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_SCORE = 5
API_KEY = "test-key"  # a made-up key: the server checks that it arrives as a bearer token

# (question_id, turn) -> the rating the judge gives; None: a judgment without a rating (score -1).
SCORES: dict[tuple[int, int], int | None] = {
    (1, 1): 8,
    (1, 2): 6,
    (2, 1): 9,
    (3, 1): 3,
    (3, 2): 5,
    (4, 1): 2,
    (5, 1): 7,
    (5, 2): None,
    (6, 1): 10,
}
QUESTIONS = [
    {"question_id": 1, "category": "writing", "turns": ["QID-1-T1 短い詩を書いて", "QID-1-T2 もっと短く"]},
    {"question_id": 2, "category": "writing", "turns": ["QID-2-T1 手紙を書いて"]},
    {"question_id": 3, "category": "math", "turns": ["QID-3-T1 2+2は?", "QID-3-T2 3+3は?"]},
    {"question_id": 4, "category": "coding", "turns": ["QID-4-T1 hello world in Python"]},
    {"question_id": 5, "category": "roleplay", "turns": ["QID-5-T1 たぬきになって", "QID-5-T2 続けて"]},
    {"question_id": 6, "category": "extraction", "turns": ["QID-6-T1 名前を抜き出して: 山田"]},
]
REFERENCES = [{"question_id": 3, "choices": [{"index": 0, "turns": ["4です。", "6です。"]}]}]


class JudgeServer:
    """Speaks POST /v1/chat/completions; the rating is chosen by the QID-n-Tm tags in the prompt."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_first_with: int | None = None  # status for the very first request (then 200s)
        self.always: int | None = None  # status for every request
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    first = not outer.requests
                    outer.requests.append(
                        {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                    )
                    status = outer.always or (outer.fail_first_with if first else None)
                if status is not None:
                    self._send(status, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
                    return
                if (
                    self.path != "/v1/chat/completions"
                    or self.headers.get("Authorization") != f"Bearer {API_KEY}"
                ):
                    self._send(401, {"error": {"message": "bad key or path"}})
                    return
                prompt = body["messages"][-1]["content"]
                tags = [(int(q), int(t)) for q, t in re.findall(r"QID-(\d+)-T(\d)", prompt)]
                if tags:
                    qid, turn = max(tags, key=lambda tag: tag[1])
                    score = SCORES[(qid, turn)]
                else:
                    score = DEFAULT_SCORE
                text = f"評価: 良い回答です。Rating: [[{score}]]" if score is not None else "評価できません。"
                reply = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                }
                self._send(200, reply)

            def _send(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> JudgeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
