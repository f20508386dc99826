"""Tamper-evident ledger of cleared runs (SPEC C5): signed, hash-chained blocks of trade and
settlement records, in SQLite (embedded default) or PostgreSQL (shared deployments).

>>> from p2pmarket.ledger import append_run, open_store, verify   # doctest: +SKIP
>>> block = append_run("sqlite:///ledger.db", "ledger.key", result)  # doctest: +SKIP
>>> with open_store("sqlite:///ledger.db") as store:                # doctest: +SKIP
...     verify(store).raise_for_failure()

See docs/ledger.md for the encoding, the block format and the guarantees.
"""

from p2pmarket.ledger.blocks import FORMAT, Block, BlockHeader, Record
from p2pmarket.ledger.encoding import canonical_bytes, canonical_text, sha256_hex
from p2pmarket.ledger.keys import generate_keypair, load_private_key, load_public_key
from p2pmarket.ledger.merkle import ProofStep, merkle_proof, merkle_root, root_from_proof
from p2pmarket.ledger.runs import (
    append_records,
    append_run,
    scenario_hash,
    settlement_records,
    trade_records,
)
from p2pmarket.ledger.store import LedgerStore, open_store
from p2pmarket.ledger.verify import (
    Reason,
    RecordProof,
    SignedHead,
    VerificationReport,
    prove,
    signed_head,
    verify,
    verify_proof,
)

__all__ = [
    "FORMAT",
    "Block",
    "BlockHeader",
    "LedgerStore",
    "ProofStep",
    "Reason",
    "Record",
    "RecordProof",
    "SignedHead",
    "VerificationReport",
    "append_records",
    "append_run",
    "canonical_bytes",
    "canonical_text",
    "generate_keypair",
    "load_private_key",
    "load_public_key",
    "merkle_proof",
    "merkle_root",
    "open_store",
    "prove",
    "root_from_proof",
    "scenario_hash",
    "settlement_records",
    "sha256_hex",
    "signed_head",
    "trade_records",
    "verify",
    "verify_proof",
]
