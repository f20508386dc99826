"""`p2pmarket serve`: run the market service (issue 13) on this machine.

The command parses, loads the registered public keys and hands the app to uvicorn; the app is
`p2pmarket.service.app.create_app`. Needs the extra `service` (FastAPI, uvicorn).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from p2pmarket.errors import LedgerError, MissingExtraError, OptionError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["load_registered_keys", "serve"]

KEY_SUFFIX = ".pub"


def load_registered_keys(directory: Path) -> dict[str, Ed25519PublicKey]:
    """Every `KEYID.pub` in `directory` (PEM or 64 hexadecimal digits, as `ledger keygen`
    writes them) by key id: the manager's and each member's (a member's key id is its peer
    id). Anything else in the directory is ignored."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from p2pmarket.ledger.keys import load_public_key

    if not directory.is_dir():
        raise OptionError("--keys", f"{str(directory)!r} is not a directory")
    keys: dict[str, Ed25519PublicKey] = {}
    for path in sorted(directory.glob(f"*{KEY_SUFFIX}")):
        try:
            keys[path.name[: -len(KEY_SUFFIX)]] = Ed25519PublicKey.from_public_bytes(
                bytes.fromhex(load_public_key(path))
            )
        except LedgerError as exc:
            raise OptionError("--keys", str(exc)) from None
    if not keys:
        raise OptionError("--keys", f"no KEYID{KEY_SUFFIX} file in {str(directory)!r}")
    return keys


def serve(
    db: Annotated[Path, typer.Option(help="The service's SQLite store (created if new).")],
    keys: Annotated[
        Path,
        typer.Option(help="Directory of registered public keys, one KEYID.pub per member."),
    ],
    manager: Annotated[
        str, typer.Option(help="Key id of the manager (its MANAGER.pub is in --keys).")
    ] = "manager",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on, 1 to 65535.")] = 8000,
) -> None:
    """Run the market service: signed orders, clearing at gate closure, bills, readings."""
    try:
        import uvicorn

        from p2pmarket.service.app import create_app
        from p2pmarket.service.store import ServiceStore
    except ImportError as exc:
        raise MissingExtraError("serve", exc.name or "fastapi", "service") from None
    if not 1 <= port <= 65535:
        raise OptionError("--port", f"must be from 1 to 65535, got {port}")
    registered = load_registered_keys(keys)
    if manager not in registered:
        raise OptionError("--manager", f"no {manager}{KEY_SUFFIX} in {str(keys)!r}")
    try:
        store = ServiceStore(db)
    except (OSError, sqlite3.Error) as exc:
        raise OptionError("--db", f"cannot open {str(db)!r}: {exc}") from None
    app = create_app(store, manager_key_id=manager, keys=registered)
    uvicorn.run(app, host=host, port=port, log_level="warning")
