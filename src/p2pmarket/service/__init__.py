"""The market service's edge, without its HTTP server: what a request must carry to be let in.

`p2pmarket.service.signatures` signs and verifies requests with HTTP Message Signatures
(RFC 9421) over Ed25519 keys, with a content digest of the body (RFC 9530), a timestamp and a
nonce. It is framework-free (plain functions over a method, a request target, a mapping of
headers and the body's bytes), so that the HTTP server's dependency is a thin call to it. See
docs/service-auth.md.

`signatures` imports no web framework. The HTTP server is `p2pmarket.service.app`
(`create_app`, FastAPI; the `service` extra), its request bodies `p2pmarket.service.models`
and its SQLite state `p2pmarket.service.store` (docs/service.md).
"""
