"""Request-scoped access to the process's services."""

from __future__ import annotations

from fastapi import Request

from modelport.services import Services


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]
