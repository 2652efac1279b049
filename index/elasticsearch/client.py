"""The HTTP side of the Elasticsearch backend: the client's transport pinned to the 8 wire format,
errors that name the server (never its credentials) and what failed."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from elastic_transport import HttpHeaders, Transport
from elasticsearch import ApiError

from modelport.index.search import (
    SearchBackendError,
)

# A 9.x client asks for `compatible-with=9`, which Elasticsearch 8 refuses with a 400; every 8.x and
# 9.x server accepts `compatible-with=8` (9.x through REST API compatibility), so requests are pinned
# to 8 whichever client major is installed.
_WIRE_MAJOR = 8
_COMPAT = re.compile(r"compatible-with=\d+")




class ElasticsearchBackendError(SearchBackendError):
    """A request to Elasticsearch failed (unreachable, refused, or answered with an error)."""


def redact_url(url: str) -> str:
    """The URL without user, password or query string, for messages and logs."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "<unparseable URL>"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class PinnedCompatTransport(Transport):
    """Sends every request with `compatible-with=8` (see `_WIRE_MAJOR`)."""

    def perform_request(self, method: str, target: str, **kwargs: Any) -> Any:
        headers = kwargs.get("headers")
        if isinstance(headers, Mapping):
            headers = HttpHeaders(headers)  # a copy, as case-insensitive as the client's own
            for name in ("accept", "content-type"):
                value = headers.get(name)
                if value and "compatible-with=" in value:
                    headers[name] = _COMPAT.sub(f"compatible-with={_WIRE_MAJOR}", value)
            kwargs["headers"] = headers
        return super().perform_request(method, target, **kwargs)


def error_type(e: ApiError) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    err = body.get("error")
    return str(err.get("type", "")) if isinstance(err, dict) else ""


def reason(e: ApiError) -> str:
    """The server's own explanation (root cause first), else the error's type."""
    body = e.body if isinstance(e.body, dict) else {}
    err = body.get("error")
    if isinstance(err, dict):
        root = (err.get("root_cause") or [{}])[0]
        reason = root.get("reason") or err.get("reason")
        kind = root.get("type") or err.get("type")
        return f"{kind}: {reason}" if reason else str(kind)
    return str(err or e.message)

