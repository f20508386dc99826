"""Checking a ledger, and proving that a block holds a record.

`verify` recomputes every record id, Merkle root, block hash and signature, follows the chain
from the genesis block to the signed head, and stops at the first block that does not check
out, saying why (`Reason`); given a head kept elsewhere (`SignedHead`), it also reports a
rollback. `check_tip` is the cheap check an append makes: the last block, its link to the
one before it and the signed head. `prove` gives a record's Merkle proof with its block's
signed header; `verify_proof` checks it without the rest of the block or the ledger.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from p2pmarket.errors import LedgerError, LedgerIntegrityError
from p2pmarket.ledger.blocks import FORMAT, GENESIS_PREVIOUS_HASH, BlockHeader, head_bytes
from p2pmarket.ledger.encoding import canonical_text, sha256_hex
from p2pmarket.ledger.keys import signature_valid
from p2pmarket.ledger.merkle import ProofStep, merkle_proof, merkle_root, root_from_proof
from p2pmarket.ledger.pin import pin_path, pinned_key
from p2pmarket.ledger.reasons import Reason
from p2pmarket.ledger.store import LedgerStore, StoredBlock, StoredHead, Tip, open_store

__all__ = [
    "Reason",
    "RecordProof",
    "SignedHead",
    "VerificationReport",
    "block_proofs",
    "check_tip",
    "expected_key",
    "prove",
    "signed_head",
    "verify",
    "verify_proof",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")


@dataclass(frozen=True)
class SignedHead:
    """The ledger's head as a member keeps it, away from the ledger: the last block's height
    and hash, the ledger's key and the key's signature over them (`ledger head` writes it;
    `verify(..., head=...)` reports a ledger that no longer reaches it)."""

    height: int
    block_hash: str
    public_key: str
    signature: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "kind": "head",
            "height": self.height,
            "block_hash": self.block_hash,
            "public_key": self.public_key,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, data: Any) -> SignedHead:
        """A head from `to_dict`'s form; `LedgerError` if it is malformed or its signature
        does not verify with the key it names."""
        if not isinstance(data, dict) or data.get("kind") != "head":
            raise LedgerError('not a ledger head: expected a JSON object with kind "head"')
        expected = {"format", "kind", "height", "block_hash", "public_key", "signature"}
        if set(data) != expected:
            raise LedgerError(f"not a ledger head: its fields are {sorted(map(str, data))}")
        height = data["height"]
        if type(height) is not int or height < 0:
            raise LedgerError(f"not a ledger head: height {height!r} is not an integer >= 0")
        for name, pattern in (
            ("block_hash", _HEX64),
            ("public_key", _HEX64),
            ("signature", _HEX128),
        ):
            value = data[name]
            if not isinstance(value, str) or pattern.fullmatch(value) is None:
                raise LedgerError(f"not a ledger head: {name} is not lower-case hexadecimal")
        if data["format"] != FORMAT:
            raise LedgerError(f"not a ledger head: format {data['format']!r} is not {FORMAT!r}")
        head = cls(height, data["block_hash"], data["public_key"], data["signature"])
        if not signature_valid(
            head.public_key, head.signature, head_bytes(height, head.block_hash)
        ):
            raise LedgerError("the head's signature does not verify with the key it names")
        return head


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

    @classmethod
    def of(cls, error: LedgerIntegrityError) -> _Failed:
        failed = cls(error.height, Reason(error.reason), error.detail)
        failed.error = error
        return failed


class _NoKey(Exception):
    """Internal: the ledger has blocks but nothing says which key should have signed them."""


def expected_key(store: LedgerStore, public_key: str | None = None) -> str | None:
    """The key a ledger is checked against: `public_key` when given, else its pinned key
    (SQLite: the `.pub` file beside the database), else None."""
    return public_key if public_key is not None else pinned_key(store.url)


def _no_key_error(store: LedgerStore) -> LedgerError:
    pin = pin_path(store.url)
    if pin is None:
        why = "a PostgreSQL ledger keeps no pinned key (see docs/ledger.md)"
    else:
        why = f"its pinned key {pin} is missing"
    return LedgerError(
        f"no key to verify {store.url} against: {why}; give the manager's public key "
        "(--pubkey FILE) or a head kept elsewhere (--head FILE)"
    )


def verify(
    store: LedgerStore | str, public_key: str | None = None, *, head: SignedHead | None = None
) -> VerificationReport:
    """Check the whole ledger (a store, or its URL) against the key it should carry:
    `public_key` (hex) when given, else the ledger's pinned key (SQLite: `LEDGER.pub`), else
    the key of `head`. With none of them, a ledger with blocks is refused (`LedgerError`): a
    chain re-signed by another key would check out against its own genesis block.

    Checks, block by block from height 0: the heights are contiguous; the header reads and is
    canonical; its height is the height it is stored at; it carries the expected key; its
    signature verifies; its stored hash is its hash; it links to the previous block; the
    records are as many as the header counts, each hashes to its id, and the ids give the
    header's Merkle root. Then the signed head must name the last block, the store must
    report no damage to its own storage (SQLite's integrity check), and, given `head` (a head
    kept elsewhere), the chain must reach it (`rolled back`) through the block it names
    (`forked chain`).
    """
    if isinstance(store, str):
        with open_store(store) as opened:
            return verify(opened, public_key, head=head)
    expected = expected_key(store, public_key)
    if head is not None:
        if expected is None:
            expected = head.public_key
        elif head.public_key != expected:
            raise LedgerError(
                f"the kept head is signed by key {head.public_key[:16]}..., not by the "
                f"expected key {expected[:16]}..."
            )
    blocks = records = 0
    key: str | None = None
    last_hash: str | None = None
    hash_at_head: str | None = None
    try:
        stored_head = store.head()
        try:
            for stored in store.blocks(up_to=None if stored_head is None else stored_head.height):
                if stored.height != blocks:
                    raise _Failed(
                        blocks,
                        Reason.MISSING_BLOCK,
                        f"no block at height {blocks} (the next stored block is {stored.height})",
                    )
                if expected is None:
                    raise _NoKey
                header = _check_block(stored, last_hash, key, expected)
                key, last_hash = header.public_key, header.block_hash
                if head is not None and stored.height == head.height:
                    hash_at_head = header.block_hash
                blocks += 1
                records += len(stored.records)
        except LedgerIntegrityError as exc:
            raise _Failed.of(exc) from exc
        except LedgerError as exc:
            raise _Failed(blocks, Reason.UNREADABLE, str(exc)) from exc
        _check_head(stored_head, blocks - 1, last_hash, key)
        _check_beyond_head(store, stored_head)
        damage = store.damage()
        if damage is not None:
            raise _Failed(None, Reason.UNREADABLE, f"the store is damaged: {damage}")
        if head is not None:
            _check_kept_head(head, blocks - 1, hash_at_head)
    except _NoKey:
        raise _no_key_error(store) from None
    except _Failed as failed:
        return VerificationReport(store.url, blocks, records, key, None, failed.error)
    except LedgerIntegrityError as exc:
        return VerificationReport(store.url, blocks, records, key, None, exc)
    except LedgerError as exc:
        error = LedgerIntegrityError(None, Reason.UNREADABLE.value, str(exc))
        return VerificationReport(store.url, blocks, records, key, None, error)
    return VerificationReport(store.url, blocks, records, key, last_hash, None)


def _check_kept_head(head: SignedHead, last: int, hash_at_head: str | None) -> None:
    if head.height > last:
        raise _Failed(
            last + 1,
            Reason.ROLLED_BACK,
            f"the ledger ends at block {last}, the published head is at block {head.height}",
        )
    if hash_at_head != head.block_hash:
        raise _Failed(
            head.height,
            Reason.FORKED,
            f"block {head.height} has hash {hash_at_head}, the published head names "
            f"{head.block_hash}",
        )


def check_tip(tip: Tip, public_key: str) -> StoredBlock:
    """What an append checks before it builds on `tip` (`LedgerIntegrityError` at the first
    thing that fails): the last block checks out (header, key, signature, hash, records) and
    links to the stored hash of the block below it, and the signed head names it. A few
    reads and three signatures, however long the chain: it is not `verify`, which an append
    could not afford, but a ledger whose end was cut off (with or without its head), or
    whose last block or head was changed, is refused rather than built on. Returns the last
    block."""
    last, head = tip.last, tip.head
    try:
        if last is None:
            if head is not None:
                raise _Failed(
                    0,
                    Reason.TRUNCATED_CHAIN,
                    f"the ledger holds no block, but its signed head names block {head.height}",
                )
            raise _Failed(0, Reason.TRUNCATED_CHAIN, "the ledger has no genesis block")
        if head is None:
            raise _Failed(
                last.height + 1,
                Reason.TRUNCATED_CHAIN,
                f"the signed head is missing: blocks after {last.height} may have been removed",
            )
        if head.height > last.height:
            raise _Failed(
                last.height + 1,
                Reason.TRUNCATED_CHAIN,
                f"the signed head names block {head.height}, but the chain ends at block "
                f"{last.height}",
            )
        if head.height < last.height:
            raise _Failed(
                last.height,
                Reason.EXTRA_BLOCK,
                f"block {last.height} is stored after block {head.height}, the last one that "
                "the signed head names",
            )
        if last.height > 0 and tip.previous_hash is None:
            raise _Failed(
                last.height - 1, Reason.MISSING_BLOCK, f"no block at height {last.height - 1}"
            )
        header = _check_block(last, tip.previous_hash, public_key, None)
        _check_head(head, last.height, header.block_hash, public_key)
    except _Failed as failed:
        raise failed.error from None
    return last


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
    if _HEX128.fullmatch(stored.signature) is None or not signature_valid(
        header.public_key, stored.signature, header.canonical()
    ):
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
    if (
        head.block_hash != last_hash
        or _HEX128.fullmatch(head.signature) is None
        or not signature_valid(key, head.signature, head_bytes(head.height, head.block_hash))
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
        """A proof from `to_dict`'s form (as `ledger prove` prints it); `LedgerError` naming
        what is malformed (a missing field, a hash that is not 64 hex digits, ...)."""
        try:
            if not isinstance(data, Mapping):
                raise ValueError(f"a proof is a JSON object, not {type(data).__name__}")
            path = data["path"]
            if not isinstance(path, list):
                raise ValueError("path is not a list")
            return cls(
                record_id=_hex(data["record_id"], _HEX64, "record_id"),
                record=canonical_text(data["record"]),
                height=_index(data["height"], "height"),
                position=_index(data["position"], "position"),
                path=tuple(_step(s) for s in path),
                header=canonical_text(data["header"]),
                signature=_hex(data["signature"], _HEX128, "signature"),
            )
        except KeyError as exc:
            raise LedgerError(f"not a record proof: no field {exc}") from exc
        except (TypeError, ValueError, LedgerError, RecursionError) as exc:
            raise LedgerError(f"not a record proof: {exc}") from exc


def _hex(value: Any, pattern: re.Pattern[str], name: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        digits = 128 if pattern is _HEX128 else 64
        raise ValueError(f"{name} is not {digits} lower-case hexadecimal digits: {value!r:.40}")
    return value


def _index(value: Any, name: str) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{name} is not an integer >= 0: {value!r:.40}")
    return value


def _step(data: Any) -> ProofStep:
    if not isinstance(data, Mapping):
        raise ValueError(f"a proof step is an object with side and hash, not {data!r:.40}")
    side = data["side"]
    if side not in ("left", "right"):
        raise ValueError(f"a proof step's side is left or right, not {side!r:.40}")
    return ProofStep("left" if side == "left" else "right", _hex(data["hash"], _HEX64, "hash"))


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
    for height, position, _ in store.find_record(wanted):
        proofs += block_proofs(store, height, [position])
    if not proofs:
        raise LedgerError(f"no record with id {wanted} in {store.url}")
    return proofs


def block_proofs(store: LedgerStore, height: int, positions: Sequence[int]) -> list[RecordProof]:
    """A proof for each record at `positions` of block `height`, from one read of the block
    (`LedgerIntegrityError` when the block or a record is missing or a record id malformed)."""
    block = store.block(height)
    if block is None:
        raise LedgerIntegrityError(height, Reason.MISSING_BLOCK.value, "no such block")
    for i, stored in enumerate(block.records):
        if stored.position != i:
            raise LedgerIntegrityError(
                height, Reason.REMOVED_RECORD.value, f"record {i} is missing"
            )
    ids = [r.record_id for r in block.records]
    if any(_HEX64.fullmatch(i) is None for i in ids):
        raise LedgerIntegrityError(
            height, Reason.CHANGED_RECORD.value, "a record id is not 64 hexadecimal digits"
        )
    proofs = []
    for position in positions:
        if not 0 <= position < len(block.records):
            raise LedgerIntegrityError(
                height, Reason.REMOVED_RECORD.value, f"record {position} is missing"
            )
        proofs.append(
            RecordProof(
                record_id=ids[position],
                record=block.records[position].body,
                height=height,
                position=position,
                path=merkle_proof(ids, position),
                header=block.header,
                signature=block.signature,
            )
        )
    return proofs


def signed_head(store: LedgerStore | str, public_key: str | None = None) -> SignedHead:
    """The head of a ledger that verifies (against `public_key`, else its pinned key), to keep
    elsewhere; raises `LedgerIntegrityError` if it does not verify."""
    if isinstance(store, str):
        with open_store(store) as opened:
            return signed_head(opened, public_key)
    report = verify(store, public_key)
    report.raise_for_failure()
    stored = store.head()
    if stored is None or report.public_key is None or stored.block_hash != report.head_hash:
        raise LedgerIntegrityError(
            None, Reason.TRUNCATED_CHAIN.value, "the head changed while it was read"
        )
    return SignedHead(stored.height, stored.block_hash, report.public_key, stored.signature)


def verify_proof(proof: RecordProof, public_key: str) -> BlockHeader:
    """Check a proof against the ledger's public key (hex): the record hashes to its id, the
    path leads to the header's Merkle root, and the header carries the key's signature.
    Returns the header; raises `LedgerIntegrityError` if any of it fails."""
    try:
        header = BlockHeader.parse(proof.header)
    except ValueError as exc:
        raise LedgerIntegrityError(proof.height, Reason.CHANGED_HEADER.value, str(exc)) from exc
    if header.height != proof.height:
        raise LedgerIntegrityError(
            proof.height,
            Reason.CHANGED_HEADER.value,
            f"the proof says block {proof.height}, its header is block {header.height}",
        )
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
