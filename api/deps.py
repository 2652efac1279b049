"""Request-scoped access to the process's services, and the admin-token check of state-changing routes."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modelport.services import Services

ADMIN_HELP = ("state-changing routes need `Authorization: Bearer <token>` with the token set as "
              "MODELPORT_ADMIN_TOKEN when the server started")

# auto_error=False: a missing header is our 401 with our message, not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="The token set as MODELPORT_ADMIN_TOKEN on the server.")


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def require_admin(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """401 without a bearer token, 403 with a wrong one (compared in constant time; neither the
    token nor what was sent is logged or echoed), 403 when no token is configured (the routes are
    then off)."""
    configured = request.app.state.services.settings.admin_token
    if configured is None or not configured.get_secret_value():
        raise HTTPException(403, "admin routes are disabled on this server: start it with MODELPORT_ADMIN_TOKEN "
                                 "set, then send `Authorization: Bearer <token>`")
    if credentials is None or not credentials.credentials:
        raise HTTPException(401, f"admin token required: {ADMIN_HELP}", headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(credentials.credentials.encode(), configured.get_secret_value().encode()):
        raise HTTPException(403, "wrong admin token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


AdminOnly = Depends(require_admin)
