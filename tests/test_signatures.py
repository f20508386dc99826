"""Signed requests (`p2pmarket.service.signatures`, `p2pmarket.client`): the RFC 9421 Ed25519
example reproduced byte for byte, a round trip, every refusal with its status, malformed
headers fuzzed, no secret in any error, and the example of docs/service-auth.md run."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from p2pmarket.client import MemberAuth, load_member_key, signed_headers
from p2pmarket.ledger.keys import generate_keypair
from p2pmarket.service import signatures
from p2pmarket.service.signatures import (
    DigestMismatchError,
    ExpiredSignatureError,
    FutureSignatureError,
    InMemoryNonceStore,
    InvalidSignatureError,
    MalformedSignatureError,
    MissingSignatureError,
    ReplayError,
    SignatureError,
    SignatureParams,
    UncoveredComponentError,
    UnknownKeyError,
    content_digest,
    sign_request,
    signature_base,
    verify_request,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "service-auth.md"
NOW = 1_750_000_000
BODY = b'{"offer": {"energy_kwh": 1.5, "price_per_kwh": 0.21}, "memo": "body-secret-memo"}'
TARGET = "/offers?period=3&peer=P3"

# --- RFC 9421 Appendix B: the test request and test-key-ed25519 (B.1.4), example B.2.6 ----

RFC_PRIVATE_KEY = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""
RFC_PUBLIC_KEY = b"""-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----
"""
RFC_BODY = b'{"hello": "world"}'
RFC_HEADERS = {
    "Host": "example.com",
    "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
    "Content-Type": "application/json",
    "Content-Digest": "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNN"
    "yealdVLvRwEmTHWXvJwew==:",
    "Content-Length": "18",
}
RFC_B26_INPUT = (
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
RFC_B26_BASE = (
    '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    '"@method": POST\n'
    '"@path": /foo\n'
    '"@authority": example.com\n'
    '"content-type": application/json\n'
    '"content-length": 18\n'
    '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" '
    '"content-length");created=1618884473;keyid="test-key-ed25519"'
)
RFC_B26_SIGNATURE = (
    "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1"
    "u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"
)


def rfc_key() -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(RFC_PRIVATE_KEY, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def rfc_b26_params() -> SignatureParams:
    return SignatureParams(
        ("date", "@method", "@path", "@authority", "content-type", "content-length"),
        (("created", 1618884473), ("keyid", "test-key-ed25519")),
    )


def test_rfc9421_b26_signature_base_and_signature() -> None:
    """RFC 9421 B.2.6: the base of the test request, and test-key-ed25519's (deterministic)
    signature of it, are the RFC's to the byte."""
    base = signature_base("POST", "/foo?param=Value&Pet=dog", RFC_HEADERS, rfc_b26_params())
    assert base.decode("ascii") == RFC_B26_BASE
    signature = base64.b64encode(rfc_key().sign(base)).decode("ascii")
    assert f"sig-b26=:{signature}:" == RFC_B26_SIGNATURE
    public = serialization.load_pem_public_key(RFC_PUBLIC_KEY)
    assert isinstance(public, Ed25519PublicKey)
    public.verify(base64.b64decode(RFC_B26_SIGNATURE.split(":")[1]), base)


def test_rfc9421_b26_header_fields_parse_and_reserialize() -> None:
    """The RFC's Signature-Input parses to the parameters above, which serialise back to it."""
    members = signatures._parse_dictionary("signature-input", RFC_B26_INPUT)
    params = signatures._signature_params(members["sig-b26"])
    assert params == rfc_b26_params()
    assert f"sig-b26={params.serialize()}" == RFC_B26_INPUT


def test_rfc9421_b26_request_is_refused_by_the_service_policy() -> None:
    """The RFC's example is a valid signature, but it covers neither @query nor the digest and
    has no nonce: the service refuses it (401, not covered)."""
    public = rfc_key().public_key()
    headers = {**RFC_HEADERS, "Signature-Input": RFC_B26_INPUT, "Signature": RFC_B26_SIGNATURE}
    with pytest.raises(UncoveredComponentError) as caught:
        verify_request(
            "POST",
            "/foo?param=Value&Pet=dog",
            headers,
            RFC_BODY,
            keys={"test-key-ed25519": public},
            now=1618884473,
            nonces=InMemoryNonceStore(),
        )
    assert caught.value.status == 401


def test_content_digest_of_the_rfc_examples() -> None:
    """RFC 9530's example digest of `{"hello": "world"}`; RFC 9421's test request carries its
    SHA-512, which the service accepts in place of SHA-256."""
    assert content_digest(RFC_BODY) == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    sha512 = base64.b64encode(hashlib.sha512(RFC_BODY).digest()).decode()
    assert RFC_HEADERS["Content-Digest"] == f"sha-512=:{sha512}:"
    assert content_digest(b"") == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"


def test_a_request_with_only_a_sha512_digest_verifies() -> None:
    key = rfc_key()
    params = SignatureParams(
        signatures.REQUIRED_COMPONENTS,
        (("created", NOW), ("nonce", "n-512"), ("keyid", "rfc"), ("alg", "ed25519")),
    )
    headers = dict(RFC_HEADERS)
    base = signature_base("POST", "/foo?param=Value&Pet=dog", headers, params)
    headers["Signature-Input"] = f"sig1={params.serialize()}"
    headers["Signature"] = "sig1=:" + base64.b64encode(key.sign(base)).decode() + ":"
    got = verify_request(
        "POST",
        "/foo?param=Value&Pet=dog",
        headers,
        RFC_BODY,
        keys={"rfc": key.public_key()},
        now=NOW,
        nonces=InMemoryNonceStore(),
    )
    assert got == "rfc"


# --- our own requests ---------------------------------------------------------------------


@pytest.fixture
def key_a() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def key_b() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def registry(key_a: Ed25519PrivateKey, key_b: Ed25519PrivateKey) -> dict[str, Ed25519PublicKey]:
    return {"A": key_a.public_key(), "B": key_b.public_key()}


def sign(
    key: Ed25519PrivateKey,
    key_id: str = "A",
    *,
    method: str = "POST",
    target: str = TARGET,
    body: bytes = BODY,
    created: int = NOW,
    nonce: str = "nonce-0001-secret",
) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    return headers | sign_request(
        method, target, headers, body, key=key, key_id=key_id, created=created, nonce=nonce
    )


def verify(
    headers: dict[str, str],
    registry: dict[str, Ed25519PublicKey],
    *,
    method: str = "POST",
    target: str = TARGET,
    body: bytes = BODY,
    now: float = NOW,
    nonces: InMemoryNonceStore | None = None,
) -> str:
    return verify_request(
        method,
        target,
        headers,
        body,
        keys=registry,
        now=now,
        nonces=nonces if nonces is not None else InMemoryNonceStore(),
    )


def test_the_signature_base_is_rfc9421s(key_a: Ed25519PrivateKey) -> None:
    """Cross-check against an independent construction of the base from RFC 9421 §2.5."""
    headers = sign(key_a)
    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(BODY).digest()).decode() + ":"
    params = (
        '("@method" "@path" "@query" "content-digest");created=1750000000'
        ';nonce="nonce-0001-secret";keyid="A";alg="ed25519"'
    )
    expected = (
        f'"@method": POST\n"@path": /offers\n"@query": ?period=3&peer=P3\n'
        f'"content-digest": {digest}\n"@signature-params": {params}'
    )
    assert headers["Content-Digest"] == digest
    assert headers["Signature-Input"] == f"sig1={params}"
    signature = base64.b64decode(headers["Signature"].removeprefix("sig1=:").removesuffix(":"))
    key_a.public_key().verify(signature, expected.encode())


def test_round_trip(key_a: Ed25519PrivateKey, registry: dict[str, Ed25519PublicKey]) -> None:
    assert verify(sign(key_a), registry) == "A"
    lowered = {name.lower(): value for name, value in sign(key_a).items()}
    assert verify(lowered, registry) == "A"
    # No query and an empty body: "@query" is "?", the digest that of b"".
    assert verify(sign(key_a, target="/", body=b""), registry, target="/", body=b"") == "A"


@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    path=st.from_regex(r"\A(/[A-Za-z0-9._~%!$&'()*+,;=:@-]*){1,4}\Z"),
    query=st.from_regex(r"\A[A-Za-z0-9._~%!$&'()*+,;=:@/?-]*\Z"),
    body=st.binary(max_size=256),
    nonce=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1),
)
def test_round_trip_of_any_request(
    method: str, path: str, query: str, body: bytes, nonce: str
) -> None:
    key = Ed25519PrivateKey.generate()
    target = f"{path}?{query}" if query else path
    headers = sign_request(method, target, {}, body, key=key, key_id="k", created=NOW, nonce=nonce)
    got = verify_request(
        method,
        target,
        headers,
        body,
        keys={"k": key.public_key()},
        now=NOW,
        nonces=InMemoryNonceStore(),
    )
    assert got == "k"


def test_boundaries_of_the_time_window(
    key_a: Ed25519PrivateKey, registry: dict[str, Ed25519PublicKey]
) -> None:
    assert verify(sign(key_a, created=NOW - 300), registry) == "A"
    assert verify(sign(key_a, created=NOW + 30), registry) == "A"


def _without(name: str) -> Callable[[dict[str, str]], dict[str, str]]:
    return lambda headers: {k: v for k, v in headers.items() if k != name}


def _replace(name: str, value: str) -> Callable[[dict[str, str]], dict[str, str]]:
    return lambda headers: headers | {name: value}


REFUSALS: dict[str, tuple[type[SignatureError], int, dict[str, object]]] = {
    "no signature at all": (MissingSignatureError, 401, {"strip": True}),
    "no Signature": (MissingSignatureError, 401, {"edit": _without("Signature")}),
    "no Signature-Input": (MissingSignatureError, 401, {"edit": _without("Signature-Input")}),
    "another member's key": (InvalidSignatureError, 401, {"signer": "B", "key_id": "A"}),
    "an unknown key id": (UnknownKeyError, 401, {"key_id": "Z"}),
    "an altered body": (DigestMismatchError, 401, {"verify": {"body": BODY + b" "}}),
    "an altered path": (InvalidSignatureError, 401, {"verify": {"target": "/bids?period=3"}}),
    "an altered query": (InvalidSignatureError, 401, {"verify": {"target": "/offers?period=4"}}),
    "a dropped query": (InvalidSignatureError, 401, {"verify": {"target": "/offers"}}),
    "an altered method": (InvalidSignatureError, 401, {"verify": {"method": "PUT"}}),
    "an expired signature": (ExpiredSignatureError, 401, {"sign": {"created": NOW - 301}}),
    "a future timestamp": (FutureSignatureError, 401, {"sign": {"created": NOW + 31}}),
    "a malformed Signature-Input": (
        MalformedSignatureError,
        422,
        {"edit": _replace("Signature-Input", 'sig1=("@method"')},
    ),
    "a malformed Signature": (
        MalformedSignatureError,
        422,
        {"edit": _replace("Signature", "sig1=:not base64!:")},
    ),
    "a malformed Content-Digest": (
        MalformedSignatureError,
        422,
        {
            "edit": _replace(
                "Content-Digest", "sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="
            )
        },
    ),
    "a digest of another body": (
        InvalidSignatureError,  # the digest is covered: changing it breaks the signature
        401,
        {"edit": _replace("Content-Digest", content_digest(b"other"))},
    ),
    "two signatures": (
        MalformedSignatureError,
        422,
        {"edit": lambda h: h | {"Signature-Input": h["Signature-Input"] + ", sig2=()"}},
    ),
    "a signature under another label": (
        MissingSignatureError,
        401,
        {"edit": lambda h: h | {"Signature": h["Signature"].replace("sig1=", "sig2=")}},
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals(
    case: str,
    key_a: Ed25519PrivateKey,
    key_b: Ed25519PrivateKey,
    registry: dict[str, Ed25519PublicKey],
) -> None:
    error, status, how = REFUSALS[case]
    signer = {"A": key_a, "B": key_b}[str(how.get("signer", "A"))]
    sign_options: dict[str, int] = how.get("sign", {})  # type: ignore[assignment]
    headers = sign(signer, str(how.get("key_id", "A")), **sign_options)  # type: ignore[arg-type]
    if how.get("strip"):
        headers = {"Content-Type": "application/json"}
    edit = how.get("edit")
    if callable(edit):
        headers = edit(headers)
    verify_options: dict[str, object] = how.get("verify", {})  # type: ignore[assignment]
    with pytest.raises(error) as caught:
        verify(headers, registry, **verify_options)  # type: ignore[arg-type]
    assert type(caught.value) is error
    assert caught.value.status == status
    assert_no_secret(caught.value, key_a, key_b, headers)


def test_replay_is_409(key_a: Ed25519PrivateKey, registry: dict[str, Ed25519PublicKey]) -> None:
    nonces = InMemoryNonceStore()
    headers = sign(key_a)
    assert verify(headers, registry, nonces=nonces) == "A"
    with pytest.raises(ReplayError) as caught:
        verify(headers, registry, nonces=nonces, now=NOW + 299)
    assert caught.value.status == 409
    assert caught.value.key_id == "A"
    assert_no_secret(caught.value, key_a, None, headers)
    # Another member may use the same nonce; after max_age the old request is expired anyway.
    assert verify(sign(key_a, "B", nonce="nonce-0001-secret"), {"B": key_a.public_key()}) == "B"
    with pytest.raises(ExpiredSignatureError):
        verify(headers, registry, nonces=nonces, now=NOW + 301)


def test_a_refused_request_does_not_use_up_its_nonce(
    key_a: Ed25519PrivateKey, registry: dict[str, Ed25519PublicKey]
) -> None:
    nonces = InMemoryNonceStore()
    headers = sign(key_a)
    with pytest.raises(DigestMismatchError):
        verify(headers, registry, nonces=nonces, body=b"forged")
    assert verify(headers, registry, nonces=nonces) == "A"


def _signed_with(
    key: Ed25519PrivateKey, params: SignatureParams, digest: str = content_digest(BODY)
) -> dict[str, str]:
    """A request signed by hand with any parameters (bypassing sign_request's defaults)."""
    headers = {"Content-Digest": digest}
    base = signature_base("POST", TARGET, headers, params)
    headers["Signature-Input"] = f"sig1={params.serialize()}"
    headers["Signature"] = "sig1=:" + base64.b64encode(key.sign(base)).decode() + ":"
    return headers


FULL_PARAMS = (("created", NOW), ("nonce", "n1"), ("keyid", "A"), ("alg", "ed25519"))


@pytest.mark.parametrize(
    ("params", "error"),
    [
        (SignatureParams(("@method", "@path", "content-digest"), FULL_PARAMS), "not-covered"),
        (SignatureParams(("@method", "@path", "@query"), FULL_PARAMS), "not-covered"),
        (SignatureParams(("@path", "@query", "content-digest"), FULL_PARAMS), "not-covered"),
        (
            SignatureParams(signatures.REQUIRED_COMPONENTS, FULL_PARAMS[:1] + FULL_PARAMS[2:]),
            "not-covered",
        ),
        (SignatureParams(signatures.REQUIRED_COMPONENTS, FULL_PARAMS[1:]), "not-covered"),
        (SignatureParams(signatures.REQUIRED_COMPONENTS, FULL_PARAMS[:2]), "not-covered"),
        (
            SignatureParams((*signatures.REQUIRED_COMPONENTS, "x-absent"), FULL_PARAMS),
            "not-covered",
        ),
        (
            SignatureParams(
                signatures.REQUIRED_COMPONENTS, (*FULL_PARAMS[:3], ("alg", "hmac-sha256"))
            ),
            "bad-signature",
        ),
        (
            SignatureParams(signatures.REQUIRED_COMPONENTS, (*FULL_PARAMS, ("expires", NOW - 1))),
            "expired",
        ),
        (
            SignatureParams(signatures.REQUIRED_COMPONENTS, (*FULL_PARAMS, ("unknown", "x"))),
            "malformed-signature",
        ),
        (
            SignatureParams(signatures.REQUIRED_COMPONENTS, (("created", "now"), *FULL_PARAMS[1:])),
            "malformed-signature",
        ),
    ],
)
def test_refusals_of_signatures_made_by_hand(
    params: SignatureParams,
    error: str,
    key_a: Ed25519PrivateKey,
    registry: dict[str, Ed25519PublicKey],
) -> None:
    """Properly signed, but not as the service requires: each is refused for what it lacks."""
    try:
        headers = _signed_with(key_a, params)
    except UncoveredComponentError:  # a covered header the request does not carry
        headers = _signed_with(key_a, SignatureParams(params.covered[:-1], params.params))
        headers["Signature-Input"] = f"sig1={params.serialize()}"
    with pytest.raises(SignatureError) as caught:
        verify(headers, registry)
    assert caught.value.reason == error
    assert caught.value.status == (422 if error == "malformed-signature" else 401)


def test_a_digest_of_an_unknown_algorithm_only_is_refused(
    key_a: Ed25519PrivateKey, registry: dict[str, Ed25519PublicKey]
) -> None:
    params = SignatureParams(signatures.REQUIRED_COMPONENTS, FULL_PARAMS)
    headers = _signed_with(key_a, params, digest="md5=:AAAAAAAAAAAAAAAAAAAAAA==:")
    with pytest.raises(DigestMismatchError) as caught:
        verify(headers, registry)
    assert caught.value.status == 401
    # Unknown algorithms beside a known one are ignored.
    digest = "md5=:AAAAAAAAAAAAAAAAAAAAAA==:, " + content_digest(BODY)
    assert verify(_signed_with(key_a, params, digest=digest), registry) == "A"


def test_a_covered_extra_header_is_signed(
    key_a: Ed25519PrivateKey, registry: dict[str, Ed25519PublicKey]
) -> None:
    headers = {"Content-Type": "application/json"}
    headers |= sign_request(
        "POST", TARGET, headers, BODY, key=key_a, key_id="A", created=NOW, cover=["content-type"]
    )
    assert verify(headers, registry) == "A"
    with pytest.raises(InvalidSignatureError):
        verify(headers | {"Content-Type": "text/plain"}, registry)


# --- malformed headers: nothing but a SignatureError, ever -------------------------------

SF_ALPHABET = 'sig1=()";:*?-_.0123456789abcdekny@ ,\t\\/+ABCxyz%'
FIELDS = ("Signature-Input", "Signature", "Content-Digest")


def header_values() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=120),
        st.text(alphabet=SF_ALPHABET, max_size=120),
    )


@given(field=st.sampled_from(FIELDS), value=header_values())
def test_arbitrary_header_values_raise_only_signature_errors(field: str, value: str) -> None:
    key = Ed25519PrivateKey.generate()
    headers = sign(key) | {field: value}
    try:
        verify(headers, {"A": key.public_key()})
    except SignatureError as exc:
        assert 400 <= exc.status < 500


@given(
    field=st.sampled_from(FIELDS),
    position=st.integers(min_value=0, max_value=400),
    insert=st.text(alphabet=SF_ALPHABET, min_size=0, max_size=3),
    drop=st.integers(min_value=0, max_value=3),
)
def test_mutated_header_values_raise_only_signature_errors(
    field: str, position: int, insert: str, drop: int
) -> None:
    """Valid fields with a few characters replaced: reaches deep into the parser."""
    key = Ed25519PrivateKey.generate()
    headers = sign(key)
    value = headers[field]
    at = position % (len(value) + 1)
    headers[field] = value[:at] + insert + value[at + drop :]
    try:
        verify(headers, {"A": key.public_key()})
    except SignatureError as exc:
        assert exc.status in (401, 422)


@given(
    headers=st.dictionaries(st.text(max_size=20), st.text(max_size=60), max_size=6),
    method=st.text(max_size=10),
    target=st.text(max_size=40),
)
def test_arbitrary_requests_raise_only_signature_errors(
    headers: dict[str, str], method: str, target: str
) -> None:
    with contextlib.suppress(SignatureError):
        verify(headers, {}, method=method, target=target)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sig1",
        "sig1=",
        "sig1=(",
        'sig1=("@method" "@path"',
        'sig1=("@method""@path")',
        'sig1=("@method");created=1;created=2',
        'sig1=("@method"), sig1=("@path")',
        "sig1=(), ",
        'sig1=("@method");nonce="unterminated',
        'sig1=("@method");nonce="bad\\escape"',
        "sig1=();created=1234567890123456",
        "sig1=();created=1.2345",
        "sig1=();created=-",
        "sig1=();alg=?2",
        "Sig1=()",
        "sig1=()é",
        "sig1=() x",
        'sig1=("@METHOD" "@path" "@query" "content-digest")',
        'sig1=("@method";sf "@path" "@query" "content-digest")',
        'sig1=("@method" "@method" "@path" "@query" "content-digest")',
        'sig1=(@method "@path" "@query" "content-digest")',
        "sig1=" + "(" * 10_000,
    ],
)
def test_malformed_signature_inputs_are_422(key_a: Ed25519PrivateKey, value: str) -> None:
    headers = sign(key_a) | {"Signature-Input": value}
    with pytest.raises(MalformedSignatureError) as caught:
        verify(headers, {"A": key_a.public_key()})
    assert caught.value.status == 422


def test_headers_given_twice_in_two_cases_are_refused(key_a: Ed25519PrivateKey) -> None:
    headers = sign(key_a)
    headers["signature"] = headers["Signature"]
    with pytest.raises(MalformedSignatureError):
        verify(headers, {"A": key_a.public_key()})


# --- no secret in errors ---------------------------------------------------------------


def assert_no_secret(
    error: SignatureError,
    key_a: Ed25519PrivateKey,
    key_b: Ed25519PrivateKey | None,
    headers: dict[str, str],
) -> None:
    """Neither private key (raw, hex, base64, PEM), nor the signature, the nonce or the body
    appears in the error's message, repr, arguments or attributes, and nothing is chained."""
    secrets: list[str] = ["nonce-0001-secret", "body-secret-memo", BODY.decode()]
    for key in (key_a, key_b):
        if key is None:
            continue
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        secrets += [raw.hex(), base64.b64encode(raw).decode(), pem.splitlines()[1], repr(raw)]
    if "Signature" in headers:
        match = re.search(r":([A-Za-z0-9+/=]{20,}):", headers["Signature"])
        if match:
            secrets += [match.group(1), match.group(1)[:20]]
    texts = [str(error), repr(error), repr(error.args), repr(vars(error))]
    for secret in secrets:
        for text in texts:
            assert secret not in text, f"{type(error).__name__} shows a secret: {text}"
    assert error.__cause__ is None
    assert error.__context__ is None


def test_member_auth_repr_shows_no_key(key_a: Ed25519PrivateKey) -> None:
    auth = MemberAuth(key_a, "A")
    raw = key_a.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    assert repr(auth) == "MemberAuth(key_id='A')"
    assert raw.hex() not in repr(vars(auth))


# --- the client ----------------------------------------------------------------------------


def test_member_auth_signs_every_request(
    key_a: Ed25519PrivateKey, registry: dict[str, Ed25519PublicKey]
) -> None:
    nonces = InMemoryNonceStore()
    seen: list[str] = []

    def service(request: httpx.Request) -> httpx.Response:
        member = verify_request(
            request.method,
            request.url.raw_path.decode("ascii"),
            request.headers,
            request.content,
            keys=registry,
            now=int(request.headers["x-test-now"]),
            nonces=nonces,
        )
        seen.append(member)
        return httpx.Response(204)

    import time

    now = {"x-test-now": str(int(time.time()))}
    with httpx.Client(
        auth=MemberAuth(key_a, "A"), transport=httpx.MockTransport(service), headers=now
    ) as client:
        client.get("https://market.example/offers?period=3&peer=P%203")
        client.post("https://market.example/offers", content=BODY)
        client.post("https://market.example/offers", content=BODY)  # a new nonce each time
        client.delete("https://market.example/")
    assert seen == ["A"] * 4


def test_signed_headers_and_load_member_key(
    tmp_path: Path, registry: dict[str, Ed25519PublicKey]
) -> None:
    private, _ = generate_keypair(tmp_path / "member.key")
    key = load_member_key(private)
    headers = signed_headers("post", "https://market.example/offers?period=3", BODY, key, "M")
    got = verify_request(
        "POST",
        "/offers?period=3",
        headers,
        BODY,
        keys={"M": key.public_key()},
        now=int(re.search(r"created=(\d+)", headers["Signature-Input"]).group(1)),  # type: ignore[union-attr]
        nonces=InMemoryNonceStore(),
    )
    assert got == "M"


# --- the nonce store ---------------------------------------------------------------------------


def test_nonce_store_forgets_what_has_expired() -> None:
    store = InMemoryNonceStore()
    for i in range(1000):
        assert store.remember("A", f"n{i}", until=NOW + i / 10, now=NOW)
    assert len(store) == 1000
    assert not store.remember("A", "n999", until=NOW + 500, now=NOW + 50)
    assert store.remember("A", "fresh", until=NOW + 500, now=NOW + 101)
    assert len(store) == 1  # every earlier nonce is past its time
    assert store.remember("A", "n0", until=NOW + 600, now=NOW + 101)  # n0 was forgotten
    assert "n0" not in repr(store)


def test_nonce_store_is_thread_safe() -> None:
    store = InMemoryNonceStore()
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for i in range(200):
            results.append(store.remember("A", f"n{i}", until=NOW + 300, now=NOW))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 200
    assert len(store) == 200


# --- the surface and the documentation -----------------------------------------------------


def test_public_surface() -> None:
    for name in signatures.__all__:
        assert hasattr(signatures, name), name
    import p2pmarket.client
    import p2pmarket.service

    assert p2pmarket.client.__all__ == ["MemberAuth", "load_member_key", "signed_headers"]
    assert not hasattr(p2pmarket.service, "__all__")  # the package is a docstring only


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("code", _python_blocks())
def test_documentation_examples_run(
    code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOC), "exec"), {})


def test_documentation_lists_every_reason() -> None:
    doc = DOC.read_text(encoding="utf-8")
    for error in SignatureError.__subclasses__():
        assert f"`{error.reason}`" in doc, error.reason
        assert f"| {error.status}" in doc or f"{error.status} |" in doc
