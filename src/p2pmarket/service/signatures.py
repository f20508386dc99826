"""Signed requests: HTTP Message Signatures (RFC 9421) with Ed25519 and a content digest.

A member's device signs each request with its Ed25519 key; the service verifies it against the
public keys the manager registered. What a request carries (see docs/service-auth.md):

    Content-Digest:  sha-256=:BASE64(SHA-256(body)):                          (RFC 9530)
    Signature-Input: sig1=("@method" "@path" "@query" "content-digest")\
;created=UNIX-SECONDS;nonce="RANDOM";keyid="KEY-ID";alg="ed25519"
    Signature:       sig1=:BASE64(Ed25519(signature base)):

The signature base is built as RFC 9421 §2.5 says: one line `"NAME": VALUE` per covered
component, then `"@signature-params": ` and the serialised Signature-Input member, lines
joined by LF with none after the last; Ed25519 signs it as it is (RFC 9421 §3.3.6).

Decisions:

- `@query` is always covered (`?` alone when the target has no query): a signature over the
  path only would let anyone who sees a request replay it with other query parameters.
  `@authority` and `@scheme` are not required (a reverse proxy may rewrite them) but may be
  covered, and so may any header field.
- Malformed Signature-Input, Signature or Content-Digest fields (not RFC 8941 structured
  fields, or not of the form above) are 422, like every request the service cannot process;
  what is well formed but fails authentication is 401; a replay is 409. 403 is the server's
  (an authenticated member asking for what it may not do), never this module's.
- One signature per request: Signature-Input holds exactly one member, under any label.
- Checks run in this order: the three fields' syntax (422), what the signature must cover and
  carry, the key id, the time window, the signature, the body's digest, the nonce. The
  Content-Digest field is covered, so a changed digest is a bad signature; a digest mismatch
  means the body alone was changed. The nonce is recorded last, once all else holds.
- Parsing is strict: RFC 8941's grammar, and a key given twice in a dictionary or in a list of
  parameters is refused (RFC 8941 would keep the last; two readers could disagree on which);
  a byte sequence must be padded base64.

No message, attribute or chained exception of a `SignatureError` holds a key, a signature, a
nonce or any of the body: only the header's name and what is wrong with it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from heapq import heappop, heappush
from typing import ClassVar, Protocol
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from p2pmarket.errors import P2PMarketError

__all__ = [
    "ALGORITHM",
    "DEFAULT_LABEL",
    "REQUIRED_COMPONENTS",
    "DigestMismatchError",
    "ExpiredSignatureError",
    "FutureSignatureError",
    "InMemoryNonceStore",
    "InvalidSignatureError",
    "MalformedSignatureError",
    "MissingSignatureError",
    "NonceStore",
    "ReplayError",
    "SignatureError",
    "SignatureParams",
    "UncoveredComponentError",
    "UnknownKeyError",
    "content_digest",
    "sign_request",
    "signature_base",
    "verify_request",
]

ALGORITHM = "ed25519"
"""The `alg` parameter of RFC 9421 §6.2.2 for Ed25519 (§3.3.6)."""
DEFAULT_LABEL = "sig1"
REQUIRED_COMPONENTS = ("@method", "@path", "@query", "content-digest")
"""What every signature must cover, in the order the signer lists them."""
MAX_FIELD_CHARS = 8192
"""Longer Signature-Input, Signature or Content-Digest fields are refused before parsing."""
MAX_PARAM_CHARS = 256
"""The longest `keyid` and `nonce` accepted (the nonce store keeps every nonce for max_age)."""

_DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
_PARAM_TYPES: dict[str, type] = {
    "created": int,
    "expires": int,
    "nonce": str,
    "alg": str,
    "keyid": str,
    "tag": str,
}
"""The signature parameters of RFC 9421 §2.3 and their types; any other is refused."""


# --- errors --------------------------------------------------------------------------


class SignatureError(P2PMarketError):
    """A request is refused by its signature. `status` is the HTTP status to answer with,
    `reason` a short code for logs and response bodies, `field` the header at fault (None when
    no single header is), `key_id` the registered key the request named (None when it named
    none that is registered). The message never quotes a key, a signature, a nonce or a body.
    """

    status: ClassVar[int] = 401
    reason: ClassVar[str] = "unauthenticated"

    def __init__(self, message: str, *, field: str | None = None, key_id: str | None = None):
        self.field = field
        self.key_id = key_id
        super().__init__(f"{field}: {message}" if field else message)


class MissingSignatureError(SignatureError):
    """The request carries no Signature-Input or no Signature (for its label)."""

    reason = "missing-signature"


class MalformedSignatureError(SignatureError):
    """A signature header is not a structured field of the expected form."""

    status = 422
    reason = "malformed-signature"


class UncoveredComponentError(SignatureError):
    """The signature does not cover what it must, lacks a required parameter, or covers a
    header field the request does not carry."""

    reason = "not-covered"


class UnknownKeyError(SignatureError):
    """The key id is not registered."""

    reason = "unknown-key"


class InvalidSignatureError(SignatureError):
    """The signature is not the named key's signature of the request (another key signed it,
    or the method, the path, the query or a covered header was changed)."""

    reason = "bad-signature"


class DigestMismatchError(SignatureError):
    """The body is not the one the Content-Digest names, or no digest of a known algorithm is
    given."""

    reason = "digest-mismatch"


class ExpiredSignatureError(SignatureError):
    """The signature was created more than `max_age_s` ago, or is past its `expires`."""

    reason = "expired"


class FutureSignatureError(SignatureError):
    """The signature was created later than now by more than the allowed clock skew."""

    reason = "created-in-future"


class ReplayError(SignatureError):
    """The key's nonce was already used by a request within the last `max_age_s`."""

    status = 409
    reason = "replay"


# --- RFC 8941 structured fields: a strict parser and the serialiser RFC 9421 needs -----


@dataclass(frozen=True)
class _Token:
    value: str


_Bare = int | float | str | bytes | bool | _Token
_Params = tuple[tuple[str, _Bare], ...]


@dataclass(frozen=True)
class _Item:
    value: _Bare
    params: _Params


@dataclass(frozen=True)
class _InnerList:
    items: tuple[_Item, ...]
    params: _Params


class _Malformed(Exception):
    """Raised inside the parser only; `_parse_dictionary` turns it into a
    MalformedSignatureError."""


_KEY_FIRST = "abcdefghijklmnopqrstuvwxyz*"
_KEY_CHARS = _KEY_FIRST + "0123456789_-."
_ALPHA = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TCHAR = _ALPHA + "0123456789!#$%&'*+-.^_`|~"
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


class _Parser:
    """RFC 8941 §4.2, with duplicate keys refused. Every failure is a `_Malformed`."""

    def __init__(self, text: str) -> None:
        if not text.isascii():
            raise _Malformed("is not ASCII")
        self.text = text.strip(" ")
        self.pos = 0

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _skip(self, chars: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1

    def dictionary(self) -> dict[str, _Item | _InnerList]:
        members: dict[str, _Item | _InnerList] = {}
        while self.pos < len(self.text):
            key = self._key()
            member: _Item | _InnerList
            if self._peek() == "=":
                self.pos += 1
                member = self._inner_list() if self._peek() == "(" else self._item()
            else:
                member = _Item(True, self._params())
            if key in members:
                raise _Malformed(f"names {key!r} twice")
            members[key] = member
            self._skip(" \t")
            if self.pos >= len(self.text):
                return members
            if self._peek() != ",":
                raise _Malformed(f"has an unexpected character at offset {self.pos}")
            self.pos += 1
            self._skip(" \t")
            if self.pos >= len(self.text):
                raise _Malformed("ends with a comma")
        return members

    def _key(self) -> str:
        start = self.pos
        if self._peek() == "" or self._peek() not in _KEY_FIRST:
            raise _Malformed(f"has no key at offset {start}")
        self._skip(_KEY_CHARS)
        return self.text[start : self.pos]

    def _params(self) -> _Params:
        params: list[tuple[str, _Bare]] = []
        while self._peek() == ";":
            self.pos += 1
            self._skip(" ")
            key = self._key()
            value: _Bare = True
            if self._peek() == "=":
                self.pos += 1
                value = self._bare()
            if any(key == seen for seen, _ in params):
                raise _Malformed(f"gives the parameter {key!r} twice")
            params.append((key, value))
        return tuple(params)

    def _inner_list(self) -> _InnerList:
        self.pos += 1  # "("
        items: list[_Item] = []
        while self.pos < len(self.text):
            self._skip(" ")
            if self._peek() == ")":
                self.pos += 1
                return _InnerList(tuple(items), self._params())
            items.append(self._item())
            if self._peek() not in (" ", ")"):
                raise _Malformed(f"has an unexpected character at offset {self.pos}")
        raise _Malformed("has an inner list that is not closed")

    def _item(self) -> _Item:
        value = self._bare()
        return _Item(value, self._params())

    def _bare(self) -> _Bare:
        char = self._peek()
        if char == "-" or char.isdigit():
            return self._number()
        if char == '"':
            return self._string()
        if char == "*" or (char != "" and char in _ALPHA):
            return self._token()
        if char == ":":
            return self._bytes()
        if char == "?":
            return self._boolean()
        raise _Malformed(f"has no value at offset {self.pos}")

    def _number(self) -> int | float:
        start = self.pos
        if self._peek() == "-":
            self.pos += 1
        digits_start = self.pos
        self._skip("0123456789")
        integer_digits = self.pos - digits_start
        if integer_digits == 0:
            raise _Malformed(f"has a sign without digits at offset {start}")
        if self._peek() != ".":
            if integer_digits > 15:
                raise _Malformed(f"has an integer of more than 15 digits at offset {start}")
            return int(self.text[start : self.pos])
        if integer_digits > 12:
            raise _Malformed(f"has a decimal of more than 12 integer digits at offset {start}")
        self.pos += 1
        fraction_start = self.pos
        self._skip("0123456789")
        if not 1 <= self.pos - fraction_start <= 3:
            raise _Malformed(f"has a decimal without 1 to 3 fraction digits at offset {start}")
        return float(self.text[start : self.pos])

    def _string(self) -> str:
        start = self.pos
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\":
                escaped = self._peek()
                if escaped not in ('"', "\\") or escaped == "":
                    raise _Malformed(f"has a bad escape in the string at offset {start}")
                chars.append(escaped)
                self.pos += 1
            elif char == '"':
                return "".join(chars)
            elif not " " <= char <= "~":
                raise _Malformed(f"has a control character in the string at offset {start}")
            else:
                chars.append(char)
        raise _Malformed(f"has a string that is not closed at offset {start}")

    def _token(self) -> _Token:
        start = self.pos
        self.pos += 1
        self._skip(_TCHAR + ":/")
        return _Token(self.text[start : self.pos])

    def _bytes(self) -> bytes:
        start = self.pos
        end = self.text.find(":", start + 1)
        if end < 0:
            raise _Malformed(f"has a byte sequence that is not closed at offset {start}")
        encoded = self.text[start + 1 : end]
        self.pos = end + 1
        if _BASE64.fullmatch(encoded) is None or len(encoded) % 4:
            raise _Malformed(f"has a byte sequence that is not base64 at offset {start}")
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error:
            pass
        raise _Malformed(f"has a byte sequence that is not base64 at offset {start}")

    def _boolean(self) -> bool:
        start = self.pos
        self.pos += 1
        char = self._peek()
        if char not in ("0", "1") or char == "":
            raise _Malformed(f"has a boolean that is neither ?0 nor ?1 at offset {start}")
        self.pos += 1
        return char == "1"


def _parse_dictionary(field: str, value: str) -> dict[str, _Item | _InnerList]:
    """The structured-field dictionary in header `field`, or a MalformedSignatureError."""
    if len(value) > MAX_FIELD_CHARS:
        raise MalformedSignatureError(f"longer than {MAX_FIELD_CHARS} characters", field=field)
    problem = ""
    try:
        return _Parser(value).dictionary()
    except _Malformed as exc:
        problem = str(exc)
    raise MalformedSignatureError(f"not a structured-field dictionary: {problem}", field=field)


def _serialize_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _serialize_params(params: Iterable[tuple[str, int | str]]) -> str:
    parts = []
    for name, value in params:
        text = str(value) if isinstance(value, int) else _serialize_string(value)
        parts.append(f";{name}={text}")
    return "".join(parts)


def _is_sf_string(value: str) -> bool:
    return all(" " <= char <= "~" for char in value)


# --- the signature base --------------------------------------------------------------


@dataclass(frozen=True)
class SignatureParams:
    """One signature's covered components and parameters (RFC 9421 §2.3), in the order the
    signer gave them: `params` pairs each parameter's name with an integer (`created`,
    `expires`) or a string (`nonce`, `alg`, `keyid`, `tag`)."""

    covered: tuple[str, ...]
    params: tuple[tuple[str, int | str], ...]

    def get(self, name: str) -> int | str | None:
        """The parameter `name`, None when it is not given."""
        return next((value for key, value in self.params if key == name), None)

    def integer(self, name: str) -> int | None:
        """The parameter `name` when it is an integer, else None."""
        value = self.get(name)
        return value if isinstance(value, int) else None

    def string(self, name: str) -> str | None:
        """The parameter `name` when it is a string, else None."""
        value = self.get(name)
        return value if isinstance(value, str) else None

    def serialize(self) -> str:
        """The `@signature-params` value: the Signature-Input member without its label."""
        components = " ".join(_serialize_string(name) for name in self.covered)
        return f"({components}){_serialize_params(self.params)}"


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """`headers` keyed by lowercase name. A name given twice (in two cases) is refused: the
    caller combines repeated field lines into one value joined by ", " (RFC 9110 §5.3)."""
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise MalformedSignatureError("header names and values must be text")
        key = name.lower()
        if key in lowered:
            raise MalformedSignatureError("given twice; combine its lines", field=key)
        lowered[key] = value
    return lowered


def _component_value(name: str, method: str, target: str, headers: Mapping[str, str]) -> str:
    """The value of one covered component (RFC 9421 §2.1, §2.2) of a request."""
    problem = ""
    try:
        parts = urlsplit(target)
    except ValueError:
        problem = "the request target is not a URL"
    if problem:
        raise MalformedSignatureError(problem)
    if name == "@method":
        value = method
    elif name == "@path":
        value = parts.path or "/"
    elif name == "@query":
        value = "?" + parts.query
    elif name == "@authority":
        authority = parts.netloc or headers.get("host")
        if authority is None:
            raise UncoveredComponentError("@authority is covered but the request has no Host")
        value = authority.lower()
    elif name.startswith("@"):
        raise MalformedSignatureError(f"the derived component {name!r} is not supported")
    elif name in headers:
        value = headers[name].strip(" \t")
    else:
        raise UncoveredComponentError(f"{name!r} is covered but the request does not carry it")
    if not _is_sf_string(value):
        where = "header" if not name.startswith("@") else "component"
        raise MalformedSignatureError(
            f"the {where} {name!r} holds characters a signature base cannot"
        )
    return value


def signature_base(
    method: str, target: str, headers: Mapping[str, str], params: SignatureParams
) -> bytes:
    """The signature base of RFC 9421 §2.5 for a request: `"NAME": VALUE` for each covered
    component, then `"@signature-params": ` and `params` serialised, joined by LF.

    `target` is the request target as sent: a path with its query (`/offers?period=3`,
    percent-encoded as on the wire, never decoded) or an absolute URL. `headers` is keyed by
    name in any case; repeated field lines are combined by the caller."""
    lowered = _lower_headers(headers)
    lines = []
    for name in params.covered:
        value = _component_value(name, method, target, lowered)
        lines.append(f"{_serialize_string(name)}: {value}")
    lines.append(f'"@signature-params": {params.serialize()}')
    return "\n".join(lines).encode("ascii")


def content_digest(body: bytes) -> str:
    """The Content-Digest field value of `body` (RFC 9530 §2): `sha-256=:BASE64:`."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


# --- signing -------------------------------------------------------------------------


def sign_request(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    key: Ed25519PrivateKey,
    key_id: str,
    created: int | None = None,
    nonce: str | None = None,
    cover: Sequence[str] = (),
    label: str = DEFAULT_LABEL,
) -> dict[str, str]:
    """The headers to add to a request so that `verify_request` accepts it: Content-Digest,
    Signature-Input and Signature.

    `path` is the request target (a path with its query, or an absolute URL); `headers` are
    those the request already has (only the fields named in `cover`, lowercase, are signed
    besides `REQUIRED_COMPONENTS`). `created` defaults to now (whole seconds), `nonce` to 128
    random bits. Deterministic given `created` and `nonce` (Ed25519 is)."""
    if created is None:
        created = int(time.time())
    if nonce is None:
        nonce = secrets.token_urlsafe(16)
    for name, value in (("key_id", key_id), ("nonce", nonce)):
        if not value or len(value) > MAX_PARAM_CHARS or not _is_sf_string(value):
            raise MalformedSignatureError(
                f"must be 1 to {MAX_PARAM_CHARS} printable ASCII characters", field=name
            )
    if not label or label[0] not in _KEY_FIRST or any(c not in _KEY_CHARS for c in label):
        raise MalformedSignatureError("not a structured-field key", field="label")
    covered = list(REQUIRED_COMPONENTS)
    for name in cover:
        if name != name.lower() or name in covered:
            raise MalformedSignatureError(f"{name!r} is not lowercase or is already covered")
        covered.append(name)
    digest = content_digest(body)
    merged = {k: v for k, v in headers.items() if k.lower() != "content-digest"}
    merged["content-digest"] = digest
    params = SignatureParams(
        tuple(covered),
        (("created", created), ("nonce", nonce), ("keyid", key_id), ("alg", ALGORITHM)),
    )
    base = signature_base(method, path, merged, params)
    signature = base64.b64encode(key.sign(base)).decode("ascii")
    return {
        "Content-Digest": digest,
        "Signature-Input": f"{label}={params.serialize()}",
        "Signature": f"{label}=:{signature}:",
    }


# --- nonces --------------------------------------------------------------------------


class NonceStore(Protocol):
    """Where the service remembers the nonces of accepted requests, per key, until a request
    carrying them would be refused as expired anyway."""

    def remember(self, key_id: str, nonce: str, *, until: float, now: float) -> bool:
        """Record `nonce` of `key_id` until the time `until` (POSIX seconds) and say True;
        say False, recording nothing, when it is already recorded and not yet past its time.
        Check and record are one atomic step."""
        ...


class InMemoryNonceStore:
    """A `NonceStore` in this process's memory, safe to share between threads. Each call
    first forgets the nonces past their time, so it holds only those of the last `max_age_s`
    (memory grows with the rate of accepted requests, not with time). A service run as several
    processes needs a store they share (a database table with a unique key) instead."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[tuple[str, str], float] = {}
        self._queue: list[tuple[float, tuple[str, str]]] = []

    def remember(self, key_id: str, nonce: str, *, until: float, now: float) -> bool:
        entry = (key_id, nonce)
        with self._lock:
            while self._queue and self._queue[0][0] < now:
                expiry, old = heappop(self._queue)
                if self._until.get(old) == expiry:
                    del self._until[old]
            known = self._until.get(entry)
            if known is not None and known >= now:
                return False
            self._until[entry] = until
            heappush(self._queue, (until, entry))
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._until)

    def __repr__(self) -> str:
        return f"InMemoryNonceStore({len(self)} nonces)"


# --- verification --------------------------------------------------------------------


def _signature_params(member: _Item | _InnerList) -> SignatureParams:
    """The covered components and parameters of a Signature-Input member, checked for form."""
    field = "signature-input"
    if not isinstance(member, _InnerList):
        raise MalformedSignatureError("the member is not a list of components", field=field)
    covered: list[str] = []
    for item in member.items:
        if not isinstance(item.value, str) or item.params:
            raise MalformedSignatureError(
                "components must be strings without parameters", field=field
            )
        name = item.value
        if name in covered:
            raise MalformedSignatureError(f"covers {name!r} twice", field=field)
        if not name or name != name.lower():
            raise MalformedSignatureError("component names must be lowercase", field=field)
        covered.append(name)
    params: list[tuple[str, int | str]] = []
    for name, value in member.params:
        expected = _PARAM_TYPES.get(name)
        if expected is None:
            raise MalformedSignatureError(f"the parameter {name!r} is not known", field=field)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | str)
            or isinstance(value, int) != (expected is int)
        ):
            kind = "an integer" if expected is int else "a string"
            raise MalformedSignatureError(f"the parameter {name!r} must be {kind}", field=field)
        params.append((name, value))
    return SignatureParams(tuple(covered), tuple(params))


def _parse_digests(headers: Mapping[str, str]) -> dict[str, bytes]:
    """The digests of known algorithms in the Content-Digest field ({} when it is absent);
    unknown algorithms are ignored (RFC 9530 §2)."""
    field = "content-digest"
    if field not in headers:
        return {}
    digests: dict[str, bytes] = {}
    for algorithm, member in _parse_dictionary(field, headers[field]).items():
        if not isinstance(member, _Item) or not isinstance(member.value, bytes) or member.params:
            raise MalformedSignatureError(f"{algorithm} is not a byte sequence", field=field)
        if algorithm in _DIGESTS:
            digests[algorithm] = member.value
    return digests


def _check_digests(digests: Mapping[str, bytes], body: bytes, key_id: str) -> None:
    field = "content-digest"
    if not digests:
        raise DigestMismatchError("no sha-256 or sha-512 digest", field=field, key_id=key_id)
    for algorithm, digest in digests.items():
        if not hmac.compare_digest(digest, _DIGESTS[algorithm](body).digest()):
            raise DigestMismatchError("the body does not match", field=field, key_id=key_id)


def verify_request(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    keys: Mapping[str, Ed25519PublicKey],
    now: float,
    nonces: NonceStore,
    max_age_s: float = 300,
    max_skew_s: float = 30,
) -> str:
    """The key id of the member whose key signed this request, or a `SignatureError` (its
    `status` the HTTP status to answer with).

    `path` is the request target exactly as received, percent-encoding included (with
    Starlette: `scope["raw_path"]` and `scope["query_string"]`, not the decoded `url.path`);
    `headers` maps each field name (any case) to its value, repeated lines combined with ", ";
    `keys` maps registered key ids to public keys; `now` is POSIX seconds. A request is
    accepted when it was created at most `max_age_s` ago and at most `max_skew_s` ahead of
    `now`, and its nonce is then remembered in `nonces` until it would expire."""
    lowered = _lower_headers(headers)
    for field in ("signature-input", "signature"):
        if field not in lowered:
            raise MissingSignatureError("the request is not signed", field=field)
    inputs = _parse_dictionary("signature-input", lowered["signature-input"])
    signatures = _parse_dictionary("signature", lowered["signature"])
    if len(inputs) != 1:
        raise MalformedSignatureError("one signature expected", field="signature-input")
    ((label, member),) = inputs.items()
    if label not in signatures:
        raise MissingSignatureError("no signature for the label", field="signature")
    if len(signatures) != 1:
        raise MalformedSignatureError("one signature expected", field="signature")
    signed = signatures[label]
    if not isinstance(signed, _Item) or not isinstance(signed.value, bytes) or signed.params:
        raise MalformedSignatureError("not a byte sequence", field="signature")
    params = _signature_params(member)
    digests = _parse_digests(lowered)

    missing = [name for name in REQUIRED_COMPONENTS if name not in params.covered]
    if missing:
        raise UncoveredComponentError(
            f"the signature does not cover {', '.join(missing)}", field="signature-input"
        )
    created, nonce = params.integer("created"), params.string("nonce")
    key_id = params.string("keyid")
    if created is None or nonce is None or key_id is None:
        missing = [n for n in ("created", "nonce", "keyid") if params.get(n) is None]
        raise UncoveredComponentError(
            f"no {' or '.join(missing)} parameter", field="signature-input"
        )
    if not 0 < len(nonce) <= MAX_PARAM_CHARS or not 0 < len(key_id) <= MAX_PARAM_CHARS:
        raise MalformedSignatureError(
            f"nonce and keyid must be 1 to {MAX_PARAM_CHARS} characters", field="signature-input"
        )
    alg = params.string("alg")
    if alg is not None and alg != ALGORITHM:
        raise InvalidSignatureError(f"alg must be {ALGORITHM!r}", field="signature-input")

    public_key = keys.get(key_id)
    if public_key is None:
        raise UnknownKeyError("the key id is not registered", field="signature-input")
    if created > now + max_skew_s:
        raise FutureSignatureError(
            f"created more than {max_skew_s:g} s ahead of the server's clock",
            field="signature-input",
            key_id=key_id,
        )
    expires = params.integer("expires")
    if now - created > max_age_s or (expires is not None and now > expires):
        raise ExpiredSignatureError(
            f"older than {max_age_s:g} s or past its expiry", field="signature-input", key_id=key_id
        )

    base = signature_base(method, path, lowered, params)
    valid = True
    try:
        public_key.verify(signed.value, base)
    except InvalidSignature:
        valid = False
    if not valid:
        raise InvalidSignatureError(
            "not the key's signature of this request", field="signature", key_id=key_id
        )
    _check_digests(digests, body, key_id)
    if not nonces.remember(key_id, nonce, until=created + max_age_s, now=now):
        raise ReplayError("this nonce was already used", field="signature-input", key_id=key_id)
    return key_id
