"""A local HTTP server speaking GitHub's OAuth web flow and the `/user` API, for the sign-in tests.

    GET  /login/oauth/authorize      the browser's stop at GitHub: redirects back with a code for the
                                     account `signed_in` names (GitHub's own sign-in page is skipped)
    POST /login/oauth/access_token   code + client secret → {"access_token": …} (JSON, as allauth asks)
    GET  /api/v3/user                `Authorization: token …` → the account's public profile

The paths are GitHub Enterprise Server's (allauth's `GITHUB_URL` points at them).
"""

from __future__ import annotations

import json
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit


class FakeGitHub:
    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.signed_in: dict[str, Any] = {}  # the profile /user answers for the next code
        self._codes: dict[str, dict[str, Any]] = {}
        self._tokens: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def sign_in_as(self, login: str, user_id: int = 1) -> None:
        self.signed_in = {
            "login": login,
            "id": user_id,
            "name": login.title(),
            "html_url": f"{self.url}/{login}",
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        github = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/login/oauth/authorize":
                    if query.get("client_id") != github.client_id:
                        self._json(HTTPStatus.NOT_FOUND, {"error": "unknown client"})
                        return
                    code = secrets.token_hex(10)
                    with github._lock:
                        github._codes[code] = dict(github.signed_in)
                    back = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
                    self.send_response(HTTPStatus.FOUND)
                    self.send_header("Location", back)
                    self.end_headers()
                elif url.path == "/api/v3/user":
                    auth = self.headers.get("Authorization", "")
                    profile = github._tokens.get(auth.removeprefix("token ").strip())
                    if not auth.startswith("token ") or profile is None:
                        self._json(HTTPStatus.UNAUTHORIZED, {"message": "Bad credentials"})
                    else:
                        self._json(HTTPStatus.OK, profile)
                else:
                    self._json(HTTPStatus.NOT_FOUND, {"message": "Not Found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if urlsplit(self.path).path != "/login/oauth/access_token":
                    self._json(HTTPStatus.NOT_FOUND, {"message": "Not Found"})
                    return
                if (form.get("client_id"), form.get("client_secret")) != (
                    github.client_id,
                    github.client_secret,
                ):
                    self._json(HTTPStatus.OK, {"error": "incorrect_client_credentials"})
                    return
                with github._lock:
                    profile = github._codes.pop(form.get("code", ""), None)
                if profile is None:
                    self._json(HTTPStatus.OK, {"error": "bad_verification_code"})
                    return
                token = f"gho_{secrets.token_hex(12)}"
                github._tokens[token] = profile
                self._json(HTTPStatus.OK, {"access_token": token, "token_type": "bearer", "scope": ""})

        return Handler
