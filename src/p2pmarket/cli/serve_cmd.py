"""`p2pmarket serve`: run the market service (issue 13) on this machine; `p2pmarket session`:
sign in to a running service's dashboard.

The commands parse, load the registered public keys and hand the app to uvicorn; the app is
`p2pmarket.service.app.create_app`. Needs the extra `service` (FastAPI, uvicorn).
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from p2pmarket.errors import LedgerError, MissingExtraError, OptionError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["load_registered_keys", "serve", "session"]

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
    db: Annotated[
        str | None,
        typer.Option(
            help="The service's store: a SQLite file (created if new) or a postgresql:// URL."
        ),
    ] = None,
    keys: Annotated[
        Path | None,
        typer.Option(help="Directory of registered public keys, one KEYID.pub per member."),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(help="The manager's private key that signs the ledger's blocks."),
    ] = None,
    ledger: Annotated[
        str | None,
        typer.Option(help="Ledger URL (default: sqlite:///DB-ledger.db beside a --db file)."),
    ] = None,
    manager: Annotated[
        str, typer.Option(help="Key id of the manager (its MANAGER.pub is in --keys).")
    ] = "manager",
    schedule: Annotated[
        float,
        typer.Option(help="Seconds between checks for markets to clear at gate closure; 0: off."),
    ] = 5.0,
    demo: Annotated[
        bool,
        typer.Option(help="Run the 17-peer community with simulated members (no other option)."),
    ] = False,
    demo_dir: Annotated[
        Path | None, typer.Option(help="Where --demo keeps its keys and data (default: new).")
    ] = None,
    gate_in: Annotated[
        float, typer.Option(help="--demo: seconds from now to the gate closure.")
    ] = 60.0,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on, 1 to 65535.")] = 8000,
) -> None:
    """Run the market service: signed orders, clearing at gate closure, bills, readings,
    one ledger block per cleared market, and the dashboard at /dashboard."""
    try:
        import uvicorn

        from p2pmarket.service.app import create_app
        from p2pmarket.service.recording import ServiceLedger
        from p2pmarket.service.sessions import SessionTokens
        from p2pmarket.service.store import ServiceStore, ServiceStoreError
    except ImportError as exc:
        raise MissingExtraError("serve", exc.name or "fastapi", "service") from None
    if not 1 <= port <= 65535:
        raise OptionError("--port", f"must be from 1 to 65535, got {port}")
    if schedule < 0 or schedule != schedule:
        raise OptionError("--schedule", f"must be 0 (off) or a positive number, got {schedule}")
    if not 1 <= gate_in <= 86_400:
        raise OptionError("--gate-in", f"must be from 1 to 86400 seconds, got {gate_in}")
    prepared = None
    if demo:
        from p2pmarket.service.demo import prepare_demo

        given = [name for name, value in (("--db", db), ("--keys", keys), ("--key", key)) if value]
        if given or ledger is not None:
            raise OptionError(given[0] if given else "--ledger", "is not taken with --demo")
        directory = demo_dir or Path(tempfile.mkdtemp(prefix="p2pmarket-demo-"))
        try:
            prepared = prepare_demo(directory)
        except (OSError, LedgerError) as exc:
            raise OptionError("--demo-dir", f"cannot use {str(directory)!r}: {exc}") from None
        db, keys, key = str(prepared.db), prepared.keys, prepared.ledger_key
        ledger = prepared.ledger_url
        schedule = schedule or 2.0
    elif demo_dir is not None:
        raise OptionError("--demo-dir", "is taken only with --demo")
    for option, value in (("--db", db), ("--keys", keys), ("--key", key)):
        if value is None:
            raise OptionError(option, "is required (or --demo)")
    assert db is not None and keys is not None and key is not None
    registered = load_registered_keys(keys)
    if manager not in registered:
        raise OptionError("--manager", f"no {manager}{KEY_SUFFIX} in {str(keys)!r}")
    try:
        store = ServiceStore(db)
    except ServiceStoreError as exc:
        raise OptionError("--db", str(exc)) from None
    except (OSError, sqlite3.Error) as exc:
        raise OptionError("--db", f"cannot open {db!r}: {exc}") from None
    if ledger is None:
        if store.path is None:
            raise OptionError("--ledger", "is required when --db is not a SQLite file")
        ledger = f"sqlite:///{store.path.with_name(store.path.stem + '-ledger.db')}"
    url = ledger
    try:
        recorded = ServiceLedger(url, key)
    except LedgerError as exc:
        raise OptionError("--key" if "key" in str(exc) else "--ledger", str(exc)) from None
    sessions = SessionTokens()
    app = create_app(
        store,
        manager_key_id=manager,
        keys=registered,
        ledger=recorded,
        nonces=store,  # shared by every process of the service, kept across restarts
        sessions=sessions,
        scheduler_interval=schedule or None,
    )
    base = f"http://{host}:{port}"
    if prepared is not None:
        token, _ = sessions.issue(manager)
        typer.echo(f"demo data in {prepared.directory}", err=True)
        typer.echo(f"dashboard (manager): {base}/dashboard#token={token}", err=True)
        threading.Thread(
            target=_wait_then_simulate, args=(base, prepared, gate_in), daemon=True
        ).start()
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _wait_then_simulate(base: str, demo: object, gate_in: float) -> None:
    """The demo's members, once the server answers."""
    import time

    import httpx

    from p2pmarket.service.demo import Demo, simulate_members

    assert isinstance(demo, Demo)
    for _ in range(600):
        try:
            httpx.get(f"{base}/openapi.json", timeout=2)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    try:
        simulate_members(base, demo, gate_in)
    except httpx.HTTPError as exc:
        typer.echo(f"demo members stopped: {exc}", err=True)


def session(
    url: Annotated[str, typer.Option(help="The service's address, e.g. http://127.0.0.1:8000.")],
    key: Annotated[Path, typer.Option(help="Your private key (its .pub is registered).")],
    key_id: Annotated[
        str | None, typer.Option(help="Your key id (default: the key file's name).")
    ] = None,
) -> None:
    """Sign in to a running service and print the dashboard's address with a session token
    (in the part after #, which the browser never sends to a server)."""
    try:
        import httpx

        from p2pmarket.client import MemberAuth, load_member_key
    except ImportError as exc:
        raise MissingExtraError("session", exc.name or "httpx", "client") from None
    try:
        private = load_member_key(key)
    except LedgerError as exc:
        raise OptionError("--key", str(exc)) from None
    name = key_id or key.name
    base = url.rstrip("/")
    try:
        answer = httpx.post(f"{base}/v1/sessions", auth=MemberAuth(private, name), timeout=30)
    except httpx.HTTPError as exc:
        raise OptionError("--url", f"cannot reach {base}: {exc}") from None
    if answer.status_code != 201:
        detail = answer.json().get("detail", answer.text) if answer.content else answer.text
        raise OptionError("--key", f"the service refused the sign-in: {detail}")
    body = answer.json()
    typer.echo(f"{base}/dashboard#token={body['token']}")
    typer.echo(
        f"signed in as {body['key_id']} ({body['role']}) until {body['expires_at']}", err=True
    )
