"""Recording a settled run in the tamper-evident ledger (SPEC C5)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from p2pmarket.app.run import MarketRun
from p2pmarket.ledger.blocks import Block, Record
from p2pmarket.ledger.runs import append_run
from p2pmarket.ledger.store import open_store

__all__ = ["Recorded", "record_run"]


@dataclass(frozen=True)
class Recorded:
    """The block appended for a run, and the store it went to."""

    block: Block
    url: str


def record_run(
    run: MarketRun, url: str, key: Path | str, *, first: Sequence[Record] = ()
) -> Recorded:
    """Append `run` to the ledger at `url` (created if new), signed with the private key file
    `key`: the records `first` (e.g. the market cleared), its settled trades with their
    energy prices, and each peer's bill. Raises `LedgerError` (bad URL or key, another
    ledger's key) and `LedgerIntegrityError`."""
    with open_store(url, create=True) as store:
        block = append_run(
            store,
            key,
            run.result,
            run.settlement.bills,
            trades=run.settlement.priced_trades(),
            first=first,
        )
        return Recorded(block, store.url)
