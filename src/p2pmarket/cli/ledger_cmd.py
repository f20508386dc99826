"""`p2pmarket ledger ...`: keys, verification, heads, inspection, export and proofs (SPEC C5,
C8).

Exit codes: 0 success, 1 the ledger (or a proof) does not verify, 2 bad input (a URL, a key
file, a record id, a malformed proof or head file, a store that cannot be opened). Every
error is one line on stderr: a tampered ledger is a verdict, never a traceback.
`check_ledger_options` (before clearing) and `append_from_cli` (after) are what
`p2pmarket run --ledger URL --key FILE` calls.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from p2pmarket.app.record import Recorded
from p2pmarket.cli.common import errors_to_exit_codes
from p2pmarket.cli.render import terminal_text
from p2pmarket.errors import LedgerError, LedgerIntegrityError
from p2pmarket.io.atomic import atomic_text, write_text_atomic
from p2pmarket.io.outputs import check_output_file, writing
from p2pmarket.ledger.blocks import BlockHeader
from p2pmarket.ledger.keys import generate_keypair, load_public_key
from p2pmarket.ledger.reasons import Reason
from p2pmarket.ledger.runs import check_signing_key
from p2pmarket.ledger.store import (
    LedgerStore,
    StoredBlock,
    open_store,
    store_kind,
)
from p2pmarket.ledger.verify import (
    RecordProof,
    SignedHead,
    expected_key,
    prove,
    signed_head,
    verify,
    verify_proof,
)

__all__ = ["check_ledger_options", "describe_append", "ledger_app"]


ledger_app = typer.Typer(
    help="Keep a tamper-evident ledger of cleared runs: keys, verify, head, show, export, prove.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help: readable at 80 columns, no <bool> on flags
    pretty_exceptions_enable=False,
)

URL_HELP = (
    "Ledger: sqlite:///FILE (relative path), sqlite:////FILE (absolute), a file path, "
    "or postgresql://..."
)


def check_ledger_options(url: str | None, key: Path | None) -> None:
    """Refuse `run --ledger URL --key FILE` options before any work is done: both or neither,
    a URL of a known kind, a readable Ed25519 private key, and the key the ledger belongs to
    (`LedgerError`, exit 2)."""
    if url is None and key is None:
        return
    if url is None or key is None:
        raise LedgerError("--ledger and --key go together: give both or neither")
    store_kind(url)
    check_signing_key(url, key)


def describe_append(recorded: Recorded) -> str:
    """One line saying which block was appended where."""
    block = recorded.block
    return (
        f"ledger: appended block {block.height} ({block.header.record_count} records, "
        f"hash {block.block_hash[:16]}) to {recorded.url}"
    )


@ledger_app.command()
@errors_to_exit_codes
def keygen(
    out: Annotated[
        Path, typer.Option(help="Private key file to write; the public key goes to FILE.pub.")
    ] = Path("ledger.key"),
    force: Annotated[bool, typer.Option(help="Overwrite existing key files.")] = False,
) -> None:
    """Write a new Ed25519 key pair for the community manager (private key mode 0600)."""
    private_path, public_path = generate_keypair(out, overwrite=force)
    public_key = load_public_key(public_path)
    Console(soft_wrap=True).print(
        f"wrote {private_path} (private, readable by its owner only) and {public_path}; "
        f"public key {public_key}",
        highlight=False,
    )


PUBKEY_HELP = (
    "The manager's public key file; the ledger must be signed with it "
    "(default: the key pinned beside a SQLite ledger, FILE.db.pub)."
)


def _json_lines(path: Path, what: str) -> list[Any]:
    """The JSON values of a file, one per non-empty line; `LedgerError` (exit 2) if the file
    cannot be read or a line is not JSON."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise LedgerError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise LedgerError(f"{path} is not a {what}: not UTF-8 text") from exc
    values = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            values.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise LedgerError(f"{path} is not a {what}: line {number}: {exc.msg}") from exc
        except RecursionError as exc:
            raise LedgerError(f"{path} is not a {what}: line {number} nests too deeply") from exc
    if not values:
        raise LedgerError(f"{path} holds no {what}")
    return values


def load_head(path: Path) -> SignedHead:
    """A head written by `ledger head` (`LedgerError` if it is malformed)."""
    values = _json_lines(path, "ledger head")
    if len(values) != 1:
        raise LedgerError(f"{path} is not a ledger head: it holds {len(values)} JSON values")
    try:
        return SignedHead.from_dict(values[0])
    except LedgerError as exc:
        raise LedgerError(f"{path}: {exc}") from exc


@ledger_app.command("verify")
@errors_to_exit_codes
def verify_command(
    url: Annotated[str, typer.Argument(help=URL_HELP)],
    pubkey: Annotated[Path | None, typer.Option(help=PUBKEY_HELP)] = None,
    head: Annotated[
        Path | None,
        typer.Option(
            help="A head kept elsewhere (`ledger head --out`): report a ledger rolled back "
            "to before it, or forked from it."
        ),
    ] = None,
) -> None:
    """Recompute every hash, Merkle root and signature; name the first block that fails."""
    expected = load_public_key(pubkey) if pubkey is not None else None
    kept = load_head(head) if head is not None else None
    with open_store(url) as store:
        report = verify(store, public_key=expected, head=kept)
    report.raise_for_failure()
    Console(soft_wrap=True).print(report.summary(), highlight=False, markup=False)


@ledger_app.command("head")
@errors_to_exit_codes
def head_command(
    url: Annotated[str, typer.Argument(help=URL_HELP)],
    pubkey: Annotated[Path | None, typer.Option(help=PUBKEY_HELP)] = None,
    out: Annotated[Path | None, typer.Option(help="Write the head (JSON) to this file.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Verify the ledger and print its signed head (height, hash, key, signature): keep it
    elsewhere, and `ledger verify URL --head FILE` reports a ledger rolled back behind it."""
    if out is not None:
        check_output_file(out, option="--out", force=force)
    expected = load_public_key(pubkey) if pubkey is not None else None
    head = signed_head(url, expected)
    text = json.dumps(head.to_dict(), sort_keys=True) + "\n"
    if out is not None:
        with writing("--out", out):
            write_text_atomic(out, text)
    sys.stdout.write(text)


def _block(store: LedgerStore, height: int) -> tuple[StoredBlock, BlockHeader]:
    block = store.block(height)
    if block is None:
        raise LedgerError(f"{store.url} has no block at height {height}")
    try:
        return block, BlockHeader.parse(block.header)
    except ValueError as exc:
        raise LedgerIntegrityError(height, Reason.CHANGED_HEADER, str(exc)) from exc


def _json_or_text(text: str) -> Any:
    """Stored JSON as an object; text that is not JSON (a damaged row) as it is."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return text


@ledger_app.command()
@errors_to_exit_codes
def show(
    url: Annotated[str, typer.Argument(help=URL_HELP)],
    height: Annotated[
        int | None, typer.Option(help="Show this block's header and records.")
    ] = None,
) -> None:
    """List the blocks, or show one block's header and records (as stored, unverified)."""
    console = Console()
    with open_store(url) as store:
        if height is None:
            console.print(
                f"{store.url} (unverified; use `ledger verify`)", highlight=False, markup=False
            )
            console.print(f"{'height':>6}  {'time (UTC)':<27}  {'records':>7}  {'hash':<16}  run")
            for stored in store.blocks(with_records=False):
                try:
                    header = BlockHeader.parse(stored.header)
                except ValueError:
                    console.print(f"{stored.height:>6}  (unreadable header)", highlight=False)
                    continue
                run = header.run
                what = (
                    "(genesis)" if run is None else f"{run.get('scenario')} ({run.get('design')})"
                )
                console.print(
                    f"{stored.height:>6}  {header.timestamp:<27}  {header.record_count:>7}  "
                    f"{stored.block_hash[:16]}  {terminal_text(what, keep='')}",
                    highlight=False,
                    soft_wrap=True,
                    markup=False,
                )
            return
        block, header = _block(store, height)
        console.print(
            f"block {height} of {store.url} (unverified; use `ledger verify`)",
            highlight=False,
            markup=False,
        )
        for name, value in header.to_dict().items():
            console.print(
                f"  {name}: {json.dumps(value)}", highlight=False, soft_wrap=True, markup=False
            )
        console.print(f"  block_hash: {header.block_hash}", highlight=False)
        console.print(f"  signature: {block.signature}", highlight=False, soft_wrap=True)
        console.print(f"  records ({len(block.records)}): id, then the record as stored")
        for record in block.records:
            line = f"  {record.record_id[:16]} {terminal_text(record.body, keep='')}"
            console.print(line, highlight=False, soft_wrap=True, markup=False)


@ledger_app.command()
@errors_to_exit_codes
def export(
    url: Annotated[str, typer.Argument(help=URL_HELP)],
    out: Annotated[Path, typer.Option(help="JSON Lines file to write: one block per line.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Write every block (header, hash, signature, records with their ids) as JSON Lines."""
    check_output_file(out, option="--out", force=force)
    with open_store(url) as store:
        count = 0
        with writing("--out", out), atomic_text(out) as handle:
            for stored in store.blocks():
                line = {
                    "height": stored.height,
                    "block_hash": stored.block_hash,
                    "header": _json_or_text(stored.header),
                    "signature": stored.signature,
                    "records": [
                        {"record_id": r.record_id, "record": _json_or_text(r.body)}
                        for r in stored.records
                    ],
                }
                handle.write(json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n")
                count += 1
        Console(soft_wrap=True).print(f"wrote {count} blocks to {out}", highlight=False)


@ledger_app.command("prove")
@errors_to_exit_codes
def prove_command(
    url: Annotated[str, typer.Argument(help=URL_HELP)],
    trade_id: Annotated[
        str, typer.Argument(help="Record id (64 hex digits, or a prefix of at least 8).")
    ],
    out: Annotated[Path | None, typer.Option(help="Write the proof(s) here too.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Print a Merkle proof (JSON, one line per block holding the record) that checks without
    the rest of the block: the record, its path to the Merkle root, and the signed header."""
    if out is not None:
        check_output_file(out, option="--out", force=force)
    with open_store(url) as store:
        proofs = prove(store, trade_id)
        ledger_key = expected_key(store) or _block(store, 0)[1].public_key
    for proof in proofs:
        verify_proof(proof, ledger_key)
    lines = [json.dumps(p.to_dict(), sort_keys=True, ensure_ascii=False) for p in proofs]
    if out is not None:
        with writing("--out", out):
            write_text_atomic(out, "".join(line + "\n" for line in lines))
    for proof in proofs:  # ASCII JSON: the same proof, and nothing that drives a terminal
        sys.stdout.write(json.dumps(proof.to_dict(), sort_keys=True) + "\n")


@ledger_app.command("verify-proof")
@errors_to_exit_codes
def verify_proof_command(
    proof_file: Annotated[Path, typer.Argument(help="A proof written by `ledger prove`.")],
    pubkey: Annotated[Path, typer.Option(help="The manager's public key file.")],
) -> None:
    """Check a proof from `ledger prove` with the public key alone, without the ledger."""
    proofs = [RecordProof.from_dict(value) for value in _json_lines(proof_file, "record proof")]
    key = load_public_key(pubkey)
    console = Console(soft_wrap=True)
    for proof in proofs:
        header = verify_proof(proof, key)
        console.print(
            f"ok: record {proof.record_id} is in block {header.height} "
            f"(Merkle root {header.merkle_root[:16]}, signed by {key[:16]})",
            highlight=False,
        )
