"""Request size limits, applied before any route parses anything: a query string or a body larger than
`max_request_bytes` is a 413 that says the limit and the setting. Bodies are counted as they arrive
(a chunked upload without Content-Length is cut off at the limit, never buffered whole)."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _text(what: str, limit: int) -> str:
    return f"{what} is larger than the server's limit of {limit} bytes (MODELPORT_MAX_REQUEST_BYTES)"


def _message(what: str, limit: int) -> bytes:
    return json.dumps({"detail": _text(what, limit)}).encode()


class RequestLimits:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope.get("query_string", b"")) + len(scope.get("raw_path") or scope["path"].encode()) > self.max_bytes:
            await _refuse(send, _message("the URL", self.max_bytes))
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            await _refuse(send, _message("the request body", self.max_bytes))
            return
        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Raised inside the route's body read: FastAPI's exception handling turns it into
                    # the 413 (FastAPI passes HTTPExceptions from body parsing through unchanged).
                    raise HTTPException(413, _text("the request body", self.max_bytes))
            return message

        await self.app(scope, counted_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Any, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
