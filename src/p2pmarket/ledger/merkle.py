"""Merkle tree over a block's record ids, and proofs that a record is in it.

Leaves and inner nodes are hashed with different one-byte prefixes (as RFC 6962 does), so no
inner node can pass for a leaf:

    leaf(id)       = SHA-256(0x00 || bytes of the record id)
    node(l, r)     = SHA-256(0x01 || l || r)
    root([])       = SHA-256(empty)

The tree is built level by level, pairing neighbours from the left; a node left without a
partner at the end of a level moves up unchanged (it is not paired with itself, which would
let two different lists of records share a root, as in Bitcoin's CVE-2012-2459). A proof is the
list of siblings from the leaf to the root, each with the side it sits on; verifying it needs
only the record, the proof and the root from the (signed) block header.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["ProofStep", "merkle_proof", "merkle_root", "root_from_proof"]

_LEAF, _NODE = b"\x00", b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()
"""The root of a block without records (the genesis block)."""


@dataclass(frozen=True)
class ProofStep:
    """A sibling on the way from a leaf to the root: its hash, and whether it is on the left
    or the right of the node being proven."""

    side: Literal["left", "right"]
    hash: str


def _leaf(record_id: str) -> bytes:
    return hashlib.sha256(_LEAF + bytes.fromhex(record_id)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def _levels(record_ids: Sequence[str]) -> list[list[bytes]]:
    """Every level of the tree, leaves first, the root's level (one node) last."""
    level = [_leaf(record_id) for record_id in record_ids]
    levels = [level]
    while len(level) > 1:
        paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
        levels.append(level)
    return levels


def merkle_root(record_ids: Sequence[str]) -> str:
    """The Merkle root of record ids (hex SHA-256 digests), in their order."""
    if not record_ids:
        return EMPTY_ROOT
    return _levels(record_ids)[-1][0].hex()


def merkle_proof(record_ids: Sequence[str], index: int) -> tuple[ProofStep, ...]:
    """The siblings that lead from leaf `index` to the root."""
    if not 0 <= index < len(record_ids):
        raise IndexError(f"record {index} is not in a block of {len(record_ids)} records")
    steps: list[ProofStep] = []
    for level in _levels(record_ids)[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            side: Literal["left", "right"] = "left" if sibling < index else "right"
            steps.append(ProofStep(side, level[sibling].hex()))
        index //= 2
    return tuple(steps)


def root_from_proof(record_id: str, steps: Sequence[ProofStep]) -> str:
    """The root that a record id and its proof lead to (compare it with the header's)."""
    node = _leaf(record_id)
    for step in steps:
        sibling = bytes.fromhex(step.hash)
        node = _node(sibling, node) if step.side == "left" else _node(node, sibling)
    return node.hex()
