"""Checking a ledger, and proving that a block holds a record.

`verify` recomputes every record id, Merkle root, block hash and signature, follows the chain
from the genesis block to the signed head, and stops at the first block that does not check
out, saying why (`Reason`). `prove` gives a record's Merkle proof with its block's signed
header; `verify_proof` checks it without the rest of the block or the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from p2pmarket.errors import LedgerError, LedgerIntegrityError
from p2pmarket.ledger.blocks import GENESIS_PREVIOUS_HASH, BlockHeader, head_bytes
from p2pmarket.ledger.encoding import sha256_hex
from p2pmarket.ledger.keys import signature_valid
from p2pmarket.ledger.merkle import ProofStep, merkle_proof, merkle_root, root_from_proof
from p2pmarket.ledger.store import LedgerStore, StoredBlock, StoredHead, open_store

__all__ = [
    "Reason",
    "RecordProof",
    "VerificationReport",
    "prove",
    "verify",
    "verify_proof",
]


class Reason(StrEnum):
    """Why a block fails verification."""

    CHANGED_RECORD = "changed record"
    """A record's text does not hash to its id, or the ids do not give the header's root."""
    REMOVED_RECORD = "removed record"
    """The block holds fewer records than its header counts (or a position is missing)."""
    ADDED_RECORD = "added record"
    """The block holds more records than its header counts."""
    CHANGED_HEADER = "changed header"
    """The header cannot be read, or its stored hash is not its hash."""
    BAD_SIGNATURE = "bad signature"
    """The signature is not the header's (or the head's) signature by the ledger's key."""
    WRONG_KEY = "wrong key"
    """The block names a key other than the ledger's (or than the one the verifier expects)."""
    REORDERED_BLOCKS = "reordered blocks"
    """The block stored at this height says it is another height."""
    BROKEN_LINK = "broken link"
    """The block's previous hash is not the hash of the block before it."""
    MISSING_BLOCK = "missing block"
    """A height between the genesis block and the head holds no block."""
    EXTRA_BLOCK = "extra block"
    """A block is stored after the last block that the signed head names."""
    TRUNCATED_CHAIN = "truncated chain"
    """The chain ends before the block that the signed head names (or it has no head)."""
    UNREADABLE = "unreadable"
    """The store itself cannot be read, or reports damage (a damaged database file)."""


@dataclass(frozen=True)
class VerificationReport:
    """The outcome of `verify`: blocks that checked out, and the first failure if any."""

    url: str
    blocks_checked: int
    records_checked: int
    public_key: str | None
    head_hash: str | None
    failure: LedgerIntegrityError | None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def raise_for_failure(self) -> None:
        """Raise the failure (`LedgerIntegrityError`: height, reason, message) if any."""
        if self.failure is not None:
            raise self.failure

    def summary(self) -> str:
        """One line: what was verified, or where and why verification failed."""
        if self.failure is not None:
            return f"{self.url}: {self.failure}"
        return (
            f"{self.url}: ok, {self.blocks_checked} blocks (heights 0-{self.blocks_checked - 1}), "
            f"{self.records_checked} records, head {self.head_hash}, key {self.public_key}"
        )


class _Failed(Exception):
    """Internal: stop verification at the first failure."""

    def __init__(self, height: int | None, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.error = LedgerIntegrityError(height, reason.value, message)


def verify(store: LedgerStore | str, public_key: str | None = None) -> VerificationReport:
    """Check the whole ledger (a store, or its URL); `public_key` (hex), when given, must be
    the genesis block's key.

    Checks, block by block from height 0: the heights are contiguous; the header reads and is
    canonical; its height is the height it is stored at; it carries the ledger's key; its
    signature verifies; its stored hash is its hash; it links to the previous block; the
    records are as many as the header counts, each hashes to its id, and the ids give the
    header's Merkle root. Then the signed head must name the last block, and the store must
    report no damage to its own storage (SQLite's integrity check).
    """
    if isinstance(store, str):
        with open_store(store) as opened:
            return verify(opened, public_key)
    blocks = records = 0
    key: str | None = None
    last_hash: str | None = None
    try:
        head = store.head()
        try:
            for stored in store.blocks(up_to=None if head is None else head.height):
                if stored.height != blocks:
                    raise _Failed(
                        blocks,
                        Reason.MISSING_BLOCK,
                        f"no block at height {blocks} (the next stored block is {stored.height})",
                    )
                header = _check_block(stored, last_hash, key, public_key)
                key, last_hash = header.public_key, header.block_hash
                blocks += 1
                records += len(stored.records)
        except LedgerError as exc:
            raise _Failed(blocks, Reason.UNREADABLE, str(exc)) from exc
        _check_head(head, blocks - 1, last_hash, key)
        _check_beyond_head(store, head)
        damage = store.damage()
        if damage is not None:
            raise _Failed(None, Reason.UNREADABLE, f"the store is damaged: {damage}")
    except _Failed as failed:
        return VerificationReport(store.url, blocks, records, key, None, failed.error)
    except LedgerError as exc:
        error = LedgerIntegrityError(None, Reason.UNREADABLE.value, str(exc))
        return VerificationReport(store.url, blocks, records, key, None, error)
    return VerificationReport(store.url, blocks, records, key, last_hash, None)


def _check_block(
    stored: StoredBlock, previous_hash: str | None, ledger_key: str | None, expected_key: str | None
) -> BlockHeader:
    """The header of a block that checks out; `_Failed` at the first thing that does not."""
    h = stored.height
    try:
        header = BlockHeader.parse(stored.header)
    except ValueError as exc:
        raise _Failed(h, Reason.CHANGED_HEADER, str(exc)) from exc
    if header.height != h:
        raise _Failed(
            h,
            Reason.REORDERED_BLOCKS,
            f"the block stored at height {h} is block {header.height} of the chain",
        )
    key = ledger_key if ledger_key is not None else expected_key
    if key is not None and header.public_key != key:
        whose = "the ledger's key" if ledger_key is not None else "the expected key"
        message = f"signed with key {header.public_key}, not {whose} {key}"
        raise _Failed(h, Reason.WRONG_KEY, message)
    if not signature_valid(header.public_key, stored.signature, header.canonical()):
        raise _Failed(
            h,
            Reason.BAD_SIGNATURE,
            "the signature does not match the header (header or signature changed)",
        )
    if stored.block_hash != header.block_hash:
        raise _Failed(
            h, Reason.CHANGED_HEADER, f"stored hash {stored.block_hash} is not the header's hash"
        )
    expected_previous = GENESIS_PREVIOUS_HASH if previous_hash is None else previous_hash
    if header.previous_hash != expected_previous:
        raise _Failed(
            h,
            Reason.BROKEN_LINK,
            f"previous hash {header.previous_hash} is not block {h - 1}'s hash {expected_previous}",
        )
    _check_records(stored, header)
    return header


def _check_records(stored: StoredBlock, header: BlockHeader) -> None:
    h, records = stored.height, stored.records
    if len(records) < header.record_count:
        raise _Failed(
            h,
            Reason.REMOVED_RECORD,
            f"{header.record_count - len(records)} of the header's {header.record_count} "
            "records are missing",
        )
    if len(records) > header.record_count:
        raise _Failed(
            h,
            Reason.ADDED_RECORD,
            f"{len(records)} records stored, the header counts {header.record_count}",
        )
    for position, record in enumerate(records):
        if record.position != position:
            raise _Failed(h, Reason.REMOVED_RECORD, f"record {position} is missing")
        if sha256_hex(record.body.encode("utf-8")) != record.record_id:
            raise _Failed(
                h,
                Reason.CHANGED_RECORD,
                f"record {position} (id {record.record_id[:16]}) does not match its id",
            )
    if merkle_root([r.record_id for r in records]) != header.merkle_root:
        raise _Failed(
            h,
            Reason.CHANGED_RECORD,
            "the records do not give the header's Merkle root (records changed or reordered)",
        )


def _check_head(head: StoredHead | None, last: int, last_hash: str | None, key: str | None) -> None:
    if last < 0 or key is None:
        raise _Failed(0, Reason.TRUNCATED_CHAIN, "the ledger has no genesis block")
    if head is None:
        raise _Failed(
            last + 1,
            Reason.TRUNCATED_CHAIN,
            f"the signed head is missing: blocks after {last} may have been removed",
        )
    if head.height > last:
        raise _Failed(
            last + 1,
            Reason.TRUNCATED_CHAIN,
            f"the signed head names block {head.height}, but the chain ends at block {last}",
        )
    if head.block_hash != last_hash or not signature_valid(
        key, head.signature, head_bytes(head.height, head.block_hash)
    ):
        raise _Failed(
            last,
            Reason.BAD_SIGNATURE,
            "the head does not carry the ledger key's signature over the last block's hash",
        )


def _check_beyond_head(store: LedgerStore, head: StoredHead | None) -> None:
    """No block is stored after the one the head names (unless an append just added it)."""
    if head is None:
        return
    extra = next(store.blocks(after=head.height, with_records=False), None)
    if extra is None:
        return
    now = store.head()
    if now is None or now.height < extra.height:
        raise _Failed(
            extra.height,
            Reason.EXTRA_BLOCK,
            f"block {extra.height} is stored after block {head.height}, the last one that "
            "the signed head names",
        )


@dataclass(frozen=True)
class RecordProof:
    """That block `height` holds a record: the record, its Merkle path, and the block's
    signed header. Checkable with `verify_proof` alone."""

    record_id: str
    record: str
    height: int
    position: int
    path: tuple[ProofStep, ...]
    header: str
    signature: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "record": json.loads(self.record),
            "height": self.height,
            "position": self.position,
            "path": [{"side": s.side, "hash": s.hash} for s in self.path],
            "header": json.loads(self.header),
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecordProof:
        """A proof from `to_dict`'s form (as `ledger prove` prints it)."""
        from p2pmarket.ledger.encoding import canonical_text

        try:
            return cls(
                record_id=str(data["record_id"]),
                record=canonical_text(data["record"]),
                height=int(data["height"]),
                position=int(data["position"]),
                path=tuple(_step(s) for s in data["path"]),
                header=canonical_text(data["header"]),
                signature=str(data["signature"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LedgerError(f"not a record proof: {exc}") from exc


def _step(data: Mapping[str, Any]) -> ProofStep:
    side = data["side"]
    if side not in ("left", "right"):
        raise ValueError(f"a proof step's side is left or right, not {side!r}")
    return ProofStep("left" if side == "left" else "right", str(data["hash"]))


def prove(store: LedgerStore | str, record_id: str) -> list[RecordProof]:
    """A proof for each record whose id is `record_id` or starts with it (at least 8 hex
    digits); the same trade recorded by two runs is in two blocks. `store` may be a URL."""
    if isinstance(store, str):
        with open_store(store) as opened:
            return prove(opened, record_id)
    wanted = record_id.strip().lower()
    if not 8 <= len(wanted) <= 64 or any(c not in "0123456789abcdef" for c in wanted):
        raise LedgerError(f"record id {record_id!r} is not 8 to 64 hexadecimal digits")
    proofs = []
    for height, position, full_id in store.find_record(wanted):
        block = store.block(height)
        if block is None:
            raise LedgerIntegrityError(height, Reason.MISSING_BLOCK.value, "no such block")
        ids = [r.record_id for r in block.records]
        proofs.append(
            RecordProof(
                record_id=full_id,
                record=block.records[position].body,
                height=height,
                position=position,
                path=merkle_proof(ids, position),
                header=block.header,
                signature=block.signature,
            )
        )
    if not proofs:
        raise LedgerError(f"no record with id {wanted} in {store.url}")
    return proofs


def verify_proof(proof: RecordProof, public_key: str) -> BlockHeader:
    """Check a proof against the ledger's public key (hex): the record hashes to its id, the
    path leads to the header's Merkle root, and the header carries the key's signature.
    Returns the header; raises `LedgerIntegrityError` if any of it fails."""
    try:
        header = BlockHeader.parse(proof.header)
    except ValueError as exc:
        raise LedgerIntegrityError(proof.height, Reason.CHANGED_HEADER.value, str(exc)) from exc
    if header.public_key != public_key:
        raise LedgerIntegrityError(
            header.height,
            Reason.WRONG_KEY.value,
            f"signed with key {header.public_key}, not {public_key}",
        )
    if not signature_valid(public_key, proof.signature, header.canonical()):
        raise LedgerIntegrityError(
            header.height, Reason.BAD_SIGNATURE.value, "the header's signature does not verify"
        )
    if sha256_hex(proof.record.encode("utf-8")) != proof.record_id:
        raise LedgerIntegrityError(
            header.height, Reason.CHANGED_RECORD.value, "the record does not match its id"
        )
    if root_from_proof(proof.record_id, proof.path) != header.merkle_root:
        raise LedgerIntegrityError(
            header.height,
            Reason.CHANGED_RECORD.value,
            "the Merkle path does not lead to the header's root",
        )
    return header
