"""Short-lived session tokens for reading (the dashboard), and per-key rate limits.

A browser cannot keep a member's Ed25519 key the way a device's client does, so the
dashboard signs in once: a request signed as every other (`POST /v1/sessions`) is answered
with a token that stands for that key id for `ttl` seconds (15 minutes by default). A token
authorises reads only (`GET`): every write stays signed. It is

    v1.<base64url of {"kid": KEY_ID, "exp": POSIX_SECONDS, "n": NONCE}>.<base64url HMAC>

with HMAC-SHA256 under the service's secret (random per process unless given, so a restart
signs every session out; several workers need the same secret). Tokens are sent in the
`Authorization: Bearer` header only, never in a URL, so they do not reach access logs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from p2pmarket.service.signatures import ExpiredSignatureError, SignatureError

__all__ = ["BadTokenError", "RateLimiter", "SessionTokens", "SessionWriteError"]


class BadTokenError(SignatureError):
    """A session token that this service did not issue, or that was altered (401)."""

    reason = "bad-token"


class SessionWriteError(SignatureError):
    """A write (not `GET`) authorised by a session token instead of a signature (401)."""

    reason = "session-read-only"


_PREFIX = "v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionTokens:
    """Issues and checks session tokens (see the module's docstring)."""

    def __init__(
        self,
        secret: bytes | None = None,
        *,
        ttl: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if secret is not None and len(secret) < 32:
            raise ValueError("a session secret needs at least 32 bytes")
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self.ttl = ttl
        self._clock = clock

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256).digest())

    def issue(self, key_id: str) -> tuple[str, float]:
        """A token for `key_id`, and when it expires (POSIX seconds)."""
        expires = math.floor(self._clock() + self.ttl)
        body = json.dumps(
            {"kid": key_id, "exp": expires, "n": secrets.token_hex(8)}, separators=(",", ":")
        )
        payload = f"{_PREFIX}.{_b64(body.encode('utf-8'))}"
        return f"{payload}.{self._mac(payload)}", float(expires)

    def check(self, token: str) -> str:
        """The key id `token` stands for; `SignatureError` (401) when it is not one of ours,
        was altered or has expired."""
        return self.session(token)[0]

    def session(self, token: str) -> tuple[str, float]:
        """The key id `token` stands for and when it expires (POSIX seconds); refused as
        `check` refuses."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _PREFIX or len(token) > 2048:
            raise BadTokenError("the session token is not one of this service")
        payload = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._mac(payload), parts[2]):
            raise BadTokenError("the session token is not one of this service")
        try:
            data = json.loads(_unb64(parts[1]))
            key_id, expires = str(data["kid"]), float(data["exp"])
        except (ValueError, KeyError, TypeError):  # signed by us, so only a format change
            raise BadTokenError("the session token cannot be read") from None
        if self._clock() >= expires:
            raise ExpiredSignatureError("the session has expired; sign in again")
        return key_id, expires

    def expired(self, expires: float) -> bool:
        """Whether a session that expires at `expires` has (on this service's clock)."""
        return self._clock() >= expires


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """A token bucket per key id: `per_second` requests on average, `burst` at once.

    `take(key_id)` is 0.0 when the request may go ahead, else the seconds to wait (the
    service answers 429 with that as `Retry-After`). Kept in this process's memory."""

    def __init__(
        self,
        per_second: float = 20.0,
        burst: int = 60,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key_id: str) -> float:
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = _Bucket(float(self.burst), now)
            bucket.tokens = min(
                float(self.burst), bucket.tokens + (now - bucket.at) * self.per_second
            )
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.per_second
