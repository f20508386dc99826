"""A member's device talking to the market service: its key, and requests signed with it.

>>> from p2pmarket.client import MemberAuth, load_member_key          # doctest: +SKIP
>>> auth = MemberAuth(load_member_key(Path("member.key")), "P3")      # doctest: +SKIP
>>> httpx.post("https://market.example/offers", json=offer, auth=auth)  # doctest: +SKIP

The key is an Ed25519 key pair written by `p2pmarket ledger keygen` (the private key mode
0600); the manager registers its public half (`.pub`) under the member's key id. Every request
is signed as `p2pmarket.service.signatures` verifies it (RFC 9421, see docs/service-auth.md).
`MemberAuth` needs httpx (`pip install 'p2pmarket[client]'`); `signed_headers` needs nothing
more than p2pmarket, for any other HTTP library.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from p2pmarket.errors import MissingExtraError
from p2pmarket.ledger.keys import load_private_key
from p2pmarket.service.signatures import sign_request

__all__ = ["MemberAuth", "load_member_key", "signed_headers"]


def load_member_key(path: Path) -> Ed25519PrivateKey:
    """The member's Ed25519 private key in the PEM file `path` (as `p2pmarket ledger keygen`
    writes it). A file others can read is refused (a `LedgerError` saying how to fix it)."""
    return load_private_key(Path(path))


def _target(url: str) -> str:
    """The request target of `url` as sent on the wire: its path (`/` if empty) and query."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def signed_headers(
    method: str,
    url: str,
    body: bytes,
    key: Ed25519PrivateKey,
    key_id: str,
    *,
    headers: Mapping[str, str] | None = None,
    created: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The Content-Digest, Signature-Input and Signature headers of a request to `url`
    (absolute, or a path with its query; percent-encoded as it will be sent) with `body` as
    its exact bytes. `created` defaults to now and `nonce` to a fresh random one: sign each
    request just before sending it, once."""
    return sign_request(
        method.upper(),
        _target(url),
        headers or {},
        body,
        key=key,
        key_id=key_id,
        created=created,
        nonce=nonce,
    )


if TYPE_CHECKING or importlib.util.find_spec("httpx") is not None:
    import httpx

    class MemberAuth(httpx.Auth):
        """An httpx authentication that signs every request, its body included, with the
        member's key: `httpx.Client(auth=MemberAuth(key, "P3"))`. A redirected or retried
        request is signed afresh (new timestamp and nonce)."""

        requires_request_body = True

        def __init__(self, key: Ed25519PrivateKey, key_id: str) -> None:
            self._key = key
            self.key_id = key_id

        def __repr__(self) -> str:
            return f"MemberAuth(key_id={self.key_id!r})"

        def auth_flow(
            self, request: httpx.Request
        ) -> Generator[httpx.Request, httpx.Response, None]:
            target = request.url.raw_path.decode("ascii")
            request.headers.update(
                sign_request(
                    request.method,
                    target,
                    request.headers,
                    request.content,
                    key=self._key,
                    key_id=self.key_id,
                )
            )
            yield request

else:  # pragma: no cover - exercised only where httpx is not installed

    class MemberAuth:
        """Stands in for the httpx authentication when httpx is not installed."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise MissingExtraError("p2pmarket.client.MemberAuth", "httpx", "client")
