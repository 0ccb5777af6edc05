"""Local stand-ins speaking Twilio's Messages API and FCM HTTP v1, deduplicating by Idempotency-Key."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

TWILIO_SID = "AC" + "0" * 32
TWILIO_TOKEN = "twilio-test-token"
FCM_TOKEN = "fcm-test-oauth-token"


class Providers:
    def __init__(self) -> None:
        self.sms: list[dict[str, Any]] = []
        self.push: list[dict[str, Any]] = []
        self.seen: dict[str, dict[str, Any]] = {}
        self.fail_next = 0
        self.delay = 0.0  # seconds each request is held: lets two workers' sends overlap in time
        self.posts: dict[str, int] = {}  # every request by Idempotency-Key, repeats included
        self.url = ""


def _handler(state: Providers) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if state.fail_next:
                state.fail_next -= 1
                return self._reply(503, {"message": "try later"})
            key = self.headers.get("Idempotency-Key", "")
            state.posts[key] = state.posts.get(key, 0) + 1
            if state.delay:
                time.sleep(state.delay)
            if key and key in state.seen:
                return self._reply(201 if "Messages.json" in self.path else 200, state.seen[key])
            if self.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json":
                expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    return self._reply(401, {"code": 20003, "message": "Authenticate"})
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                if not {"To", "From", "Body"} <= set(form):
                    return self._reply(400, {"code": 21604, "message": "missing parameter"})
                body = {
                    "sid": f"SM{len(state.sms):032d}",
                    "status": "queued",
                    **{k.lower(): v for k, v in form.items()},
                }
                state.sms.append(form)
                state.seen[key] = body
                return self._reply(201, body)
            if self.path.startswith("/v1/projects/") and self.path.endswith("/messages:send"):
                if self.headers.get("Authorization") != f"Bearer {FCM_TOKEN}":
                    return self._reply(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
                message = json.loads(raw).get("message", {})
                if not message.get("token"):
                    return self._reply(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT"}})
                project = self.path.split("/")[3]
                body = {"name": f"projects/{project}/messages/{len(state.push)}"}
                state.push.append(message)
                state.seen[key] = body
                return self._reply(200, body)
            return self._reply(404, {"message": "not found"})

    return Handler


@contextmanager
def providers() -> Iterator[Providers]:
    state = Providers()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def twilio_env(url: str) -> dict[str, str]:
    """The settings a send worker subprocess needs to talk to the local Twilio stand-in at `url`."""
    return {
        "SEGMENTS_TWILIO_BASE_URL": url,
        "SEGMENTS_TWILIO_ACCOUNT_SID": TWILIO_SID,
        "SEGMENTS_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "SEGMENTS_TWILIO_FROM": "+15005550006",
    }
