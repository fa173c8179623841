"""Bearer-token auth: a random token in ``DATA_DIR/token`` (mode 0600), checked on every request but health.

The check is ASGI middleware, so it runs before anything reads the body: a client without the token
learns nothing about the API beyond a 401.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/v1/health", "/openapi.json"})


def ensure_token(data_dir: Path) -> str:
    """Read the token, creating it (readable by the owner only) on first start."""
    path = data_dir / "token"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("%s was readable by others (mode %o); setting it to 0600", path, mode)
            path.chmod(0o600)
        token = path.read_text().strip()
        if token:
            return token
        path.unlink()
        return ensure_token(data_dir)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


class BearerAuth:
    """ASGI middleware: 401 (JSON, with WWW-Authenticate) unless ``Authorization: Bearer <token>``."""

    def __init__(self, app, token: str):
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS or not scope["path"].startswith("/v1"):
            await self.app(scope, receive, send)
            return
        if self.valid(dict(scope["headers"]).get(b"authorization", b"")):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "error": "missing or wrong bearer token: send 'Authorization: Bearer <token>' with the token "
                "from the server's DATA_DIR/token file"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def valid(self, header: bytes) -> bool:
        scheme, _, value = header.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), self._token)
