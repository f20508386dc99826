"""The service's ledger: one block per cleared market, found again by the market it records.

Each block the service appends starts with a `market` record, `{"kind": "market",
"market_id", "gate_closure", "scenario_hash"}`; its id (the SHA-256 of its canonical text)
follows from the market alone, so the block of a market is found by that id without any
state kept elsewhere. That is what makes clearing safe against a crash:

1. the market is cleared (deterministic: the same scenario, the same result);
2. `record` looks for the market's block; when there is none it appends one (one
   transaction of the ledger's store: a block is written whole or not at all);
3. the service stores the result with the block's height.

A crash between 2 and 3 leaves a block and no result; the next clearing finds the block,
checks that it holds exactly the records the clearing gives (else `LedgerIntegrityError`:
the market was recorded with other trades), and stores the result against it. So a market
has one block however often, and however interrupted, it is cleared.

Appends are serialised by the ledger's store; a market is cleared by one thread of one
process at a time (the service's lock), so two clearings of one market never race.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2pmarket.app.record import record_run
from p2pmarket.app.run import MarketRun
from p2pmarket.errors import LedgerIntegrityError
from p2pmarket.ledger.blocks import Record
from p2pmarket.ledger.keys import load_private_key, public_key_hex
from p2pmarket.ledger.reasons import Reason
from p2pmarket.ledger.runs import (
    check_signing_key,
    scenario_hash,
    settlement_records,
    trade_records,
)
from p2pmarket.ledger.store import open_store
from p2pmarket.ledger.verify import RecordProof, block_proofs, verify

__all__ = ["LedgerStatus", "ServiceLedger", "market_record"]


def market_record(market_id: str, gate_closure: str, run: MarketRun) -> Record:
    """The first record of a market's block (see the module's docstring)."""
    return Record.from_data(
        {
            "kind": "market",
            "market_id": market_id,
            "gate_closure": gate_closure,
            "scenario_hash": scenario_hash(run.result.scenario),
        }
    )


@dataclass(frozen=True)
class LedgerStatus:
    """What the dashboard shows of the ledger: verified or not, up to which height."""

    url: str
    public_key: str
    verified: bool
    blocks: int
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "public_key": self.public_key,
            "verified": self.verified,
            "blocks": self.blocks,
            "detail": self.detail,
        }


@dataclass
class ServiceLedger:
    """The ledger at `url`, appended to with the private key file `key` (the manager's)."""

    url: str
    key: Path
    public_key: str = field(init=False)
    max_age: float = 30.0
    """Seconds a verification is reused for while the ledger has not grown."""
    _status: tuple[int, float, LedgerStatus] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.key = Path(self.key)
        check_signing_key(self.url, self.key)  # the ledger's own key, its end checks out
        self.public_key = public_key_hex(load_private_key(self.key))

    def record(self, market_id: str, gate_closure: str, run: MarketRun) -> int:
        """The height of the market's block: found, or appended now (module docstring)."""
        marker = market_record(market_id, gate_closure, run)
        with open_store(self.url, create=True) as store:
            found = [
                h for h, _, rid in store.find_record(marker.record_id) if rid == marker.record_id
            ]
            if found:
                height = min(found)
                block = store.block(height)
                expected = [marker.record_id] + [
                    r.record_id
                    for r in trade_records(run.settlement.priced_trades())
                    + settlement_records(run.settlement.bills)
                ]
                stored = [r.record_id for r in block.records] if block is not None else []
                if stored != expected:
                    raise LedgerIntegrityError(
                        height,
                        Reason.CHANGED_RECORD.value,
                        f"market {market_id} is recorded with other records than its clearing",
                    )
                return height
        recorded = record_run(run, self.url, self.key, first=[marker])
        return recorded.block.header.height

    def proofs(self, height: int, member: str) -> list[RecordProof]:
        """Merkle proofs of the member's trade records in block `height`."""
        with open_store(self.url) as store:
            block = store.block(height)
            if block is None:
                raise LedgerIntegrityError(height, Reason.MISSING_BLOCK.value, "no such block")
            positions = [
                r.position
                for r in block.records
                if _is_trade_of(Record(r.record_id, r.body), member)
            ]
            return block_proofs(store, height, positions)

    def block(self, height: int) -> dict[str, Any] | None:
        """Block `height` as stored: its signed header, signature, hash and record ids."""
        with open_store(self.url) as store:
            block = store.block(height)
        if block is None:
            return None
        return {
            "height": block.height,
            "block_hash": block.block_hash,
            "header": json.loads(block.header),
            "signature": block.signature,
            "record_ids": [r.record_id for r in block.records],
        }

    def status(self) -> LedgerStatus:
        """The whole ledger verified against its key: again when it has grown, or when the
        last verification is older than `max_age` seconds (a change in place is found then)."""
        with open_store(self.url, create=True) as store:
            tip = store.tip()
            height = tip.last.height if tip.last is not None else -1
            with self._lock:
                cached = self._status
                fresh = cached is not None and time.monotonic() - cached[1] < self.max_age
                if cached is not None and fresh and cached[0] == height:
                    return cached[2]
            if tip.empty:
                return LedgerStatus(
                    url=store.url,
                    public_key=self.public_key,
                    verified=True,
                    blocks=0,
                    detail=f"{store.url}: empty, no market recorded yet",
                )
            report = verify(store, self.public_key)
        status = LedgerStatus(
            url=report.url,
            public_key=self.public_key,
            verified=report.ok,
            blocks=report.blocks_checked,
            detail=report.summary(),
        )
        with self._lock:
            self._status = (height, time.monotonic(), status)
        return status


def _is_trade_of(record: Record, member: str) -> bool:
    data = record.data
    return data.get("kind") == "trade" and member in (data.get("seller"), data.get("buyer"))
