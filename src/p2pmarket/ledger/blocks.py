"""Records, block headers and blocks; how a block is made and signed.

A block is a header and a body. The body is a list of records, each a JSON object stored in
the canonical encoding; a record's id is the SHA-256 of those bytes, so it derives from the
content alone. The header holds:

    format         "p2pmarket-ledger/1"
    height         0 for the genesis block, then 1, 2, ...
    previous_hash  the previous block's hash (64 zeros for the genesis block)
    timestamp      UTC time of the append (the one part that is not deterministic)
    scenario_hash  SHA-256 of the canonical encoding of the scenario (null for genesis)
    merkle_root    Merkle root over the record ids, in their order (see `merkle`)
    record_count   number of records
    public_key     the community manager's Ed25519 public key (hex); the genesis block's
                   key is the ledger's key, and every later block must carry the same
    run            what was cleared: scenario name, design, objective (null for genesis)

The block hash is the SHA-256 of the header's canonical bytes; the signature is the Ed25519
signature of the same bytes by the manager's key. The ledger's head, stored beside the blocks
and replaced at every append, names the last block (height and hash) under a signature of its
own, so that removing blocks from the end is detected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from p2pmarket.errors import LedgerError
from p2pmarket.ledger.encoding import canonical_bytes, canonical_text, sha256_hex, utc_text
from p2pmarket.ledger.keys import public_key_hex, sign
from p2pmarket.ledger.merkle import merkle_root

__all__ = [
    "FORMAT",
    "GENESIS_PREVIOUS_HASH",
    "Block",
    "BlockHeader",
    "Record",
    "head_bytes",
    "make_block",
]

FORMAT = "p2pmarket-ledger/1"
GENESIS_PREVIOUS_HASH = "0" * 64

_HEADER_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "height": int,
    "previous_hash": str,
    "timestamp": str,
    "scenario_hash": (str, type(None)),
    "merkle_root": str,
    "record_count": int,
    "public_key": str,
    "run": (dict, type(None)),
}


@dataclass(frozen=True)
class Record:
    """One record of a block: its canonical text and its id (SHA-256 of that text)."""

    record_id: str
    body: str

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Record:
        """The record of a JSON object (`kind` says what it is: `trade`, `settlement`)."""
        body = canonical_text(data)
        return cls(sha256_hex(body.encode("utf-8")), body)

    @property
    def data(self) -> dict[str, Any]:
        """The record as a plain object (decimals are strings, as stored)."""
        value: dict[str, Any] = json.loads(self.body)
        return value


@dataclass(frozen=True)
class BlockHeader:
    """The signed part of a block (see the module's docstring for each field)."""

    height: int
    previous_hash: str
    timestamp: str
    scenario_hash: str | None
    merkle_root: str
    record_count: int
    public_key: str
    run: Mapping[str, Any] | None
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        """The header as a JSON object."""
        return {
            "format": self.format,
            "height": self.height,
            "previous_hash": self.previous_hash,
            "timestamp": self.timestamp,
            "scenario_hash": self.scenario_hash,
            "merkle_root": self.merkle_root,
            "record_count": self.record_count,
            "public_key": self.public_key,
            "run": None if self.run is None else dict(self.run),
        }

    def canonical(self) -> bytes:
        """The bytes that are hashed and signed."""
        return canonical_bytes(self.to_dict())

    @property
    def block_hash(self) -> str:
        """SHA-256 of the canonical header."""
        return sha256_hex(self.canonical())

    @classmethod
    def parse(cls, text: str) -> BlockHeader:
        """A header from its stored text; `ValueError` says what is wrong with it."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"header is not JSON ({exc.msg})") from exc
        except RecursionError as exc:
            raise ValueError("header is not JSON (nested too deeply)") from exc
        if not isinstance(data, dict):
            raise ValueError("header is not a JSON object")
        if set(data) != set(_HEADER_FIELDS):
            raise ValueError(f"header fields are {sorted(data)}, not {sorted(_HEADER_FIELDS)}")
        for name, kind in _HEADER_FIELDS.items():
            value = data[name]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ValueError(f"header field {name} has the wrong type: {value!r}")
        header = cls(**data)
        if header.format != FORMAT:
            raise ValueError(f"header format is {header.format!r}, not {FORMAT!r}")
        try:
            canonical = canonical_text(header.to_dict())
        except LedgerError as exc:
            raise ValueError(f"header is not in the canonical encoding ({exc})") from exc
        if canonical != text:
            raise ValueError("header is not in the canonical encoding")
        return header


@dataclass(frozen=True)
class Block:
    """A signed block: header, signature (hex) and records."""

    header: BlockHeader
    signature: str
    records: tuple[Record, ...]

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def block_hash(self) -> str:
        return self.header.block_hash


def head_bytes(height: int, block_hash: str) -> bytes:
    """What the head's signature signs: the height and hash of the ledger's last block."""
    return canonical_bytes(
        {"format": FORMAT, "kind": "head", "height": height, "block_hash": block_hash}
    )


def make_block(
    key: Ed25519PrivateKey,
    *,
    height: int,
    previous_hash: str,
    timestamp: datetime,
    records: Sequence[Record],
    scenario_hash: str | None,
    run: Mapping[str, Any] | None,
) -> Block:
    """Build and sign a block. Everything but `timestamp` is a function of the arguments."""
    if height < 0:
        raise LedgerError(f"a block height is >= 0, got {height}")
    header = BlockHeader(
        height=height,
        previous_hash=previous_hash,
        timestamp=utc_text(timestamp),
        scenario_hash=scenario_hash,
        merkle_root=merkle_root([r.record_id for r in records]),
        record_count=len(records),
        public_key=public_key_hex(key),
        run=None if run is None else json.loads(canonical_text(run)),
    )
    return Block(header, sign(key, header.canonical()), tuple(records))
