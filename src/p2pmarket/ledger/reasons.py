"""Why a ledger fails verification: the `Reason` of a `LedgerIntegrityError`."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Reason"]


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
    ROLLED_BACK = "rolled back"
    """The chain ends before the block that a head kept elsewhere names."""
    FORKED = "forked chain"
    """The block at the height of a head kept elsewhere is not the block that head names."""
    UNREADABLE = "unreadable"
    """The store itself cannot be read, a stored value has the wrong type (a NULL, text where
    a number belongs), or the store reports damage (a damaged database file)."""
