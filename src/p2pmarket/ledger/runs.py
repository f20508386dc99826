"""Appending cleared runs: records from a result, and the append itself.

Each cleared run becomes one block. Its records, in this order:

- one `trade` record per row of `result.trades`: `period`, `seller`, `buyer`, `route`,
  `energy_kwh`, `price_per_kwh`, `amount` (= energy x price), `fee_per_kwh`, `fee`, and
  `priced_by`: `"price"` when the trades table has a `price_per_kwh` column (settlement
  prices), else `"fee"` (the price recorded is then the fee, and the amount the fee paid);
- one `settlement` record per row of the settlement lines, when given: every column as it is
  (the table needs at least a `peer` column).

Numbers are rounded to `RECORD_PLACES` (9) decimal places and stored as decimal strings.
The header's scenario hash is the SHA-256 of the canonical encoding of
`result.scenario.to_dict()`.

An append builds only on a ledger whose end checks out (`verify.check_tip`: the last block,
its link to the block below it, the signed head, the pinned key): a ledger cut short (its
last blocks deleted, with or without the head) is refused, never laundered by a new block.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import Scenario
from p2pmarket.errors import LedgerError, LedgerIntegrityError
from p2pmarket.ledger.blocks import (
    GENESIS_PREVIOUS_HASH,
    Block,
    BlockHeader,
    Record,
    head_bytes,
    make_block,
)
from p2pmarket.ledger.encoding import canonical_bytes, quantize, sha256_hex
from p2pmarket.ledger.keys import load_private_key, public_key_hex, sign
from p2pmarket.ledger.pin import pin_path, pinned_key, write_pin
from p2pmarket.ledger.reasons import Reason
from p2pmarket.ledger.store import (
    Append,
    LedgerStore,
    StoredBlock,
    Tip,
    open_store,
    sqlite_path,
    store_kind,
)
from p2pmarket.ledger.verify import check_tip

__all__ = [
    "append_records",
    "append_run",
    "check_signing_key",
    "scenario_hash",
    "settlement_records",
    "trade_records",
]

_TRADE_COLUMNS = ("period", "seller", "buyer", "route", "energy_kwh", "fee_per_kwh", "fee")


def scenario_hash(scenario: Scenario) -> str:
    """SHA-256 of the canonical encoding of `scenario.to_dict()`."""
    return sha256_hex(canonical_bytes(scenario.to_dict()))


def trade_records(trades: pd.DataFrame) -> list[Record]:
    """One `trade` record per row of a result's trades table (see the module's docstring)."""
    missing = [c for c in _TRADE_COLUMNS if c not in trades.columns]
    if missing:
        raise LedgerError(f"the trades table has no column {', '.join(missing)}")
    priced = "price_per_kwh" in trades.columns
    price_column = "price_per_kwh" if priced else "fee_per_kwh"
    columns = [*_TRADE_COLUMNS, price_column]
    records = []
    for period, seller, buyer, route, energy, fee_rate, fee, price in trades[columns].itertuples(
        index=False, name=None
    ):
        records.append(
            Record.from_data(
                {
                    "kind": "trade",
                    "period": int(period),
                    "seller": str(seller),
                    "buyer": str(buyer),
                    "route": str(route),
                    "energy_kwh": quantize(float(energy)),
                    "price_per_kwh": quantize(float(price)),
                    "amount": quantize(float(energy) * float(price)),
                    "fee_per_kwh": quantize(float(fee_rate)),
                    "fee": quantize(float(fee)),
                    "priced_by": "price" if priced else "fee",
                }
            )
        )
    return records


def settlement_records(lines: pd.DataFrame) -> list[Record]:
    """One `settlement` record per row of a settlement table with at least a `peer` column;
    floats are rounded to the record precision, missing values become null."""
    if "peer" not in lines.columns:
        raise LedgerError("the settlement lines have no column 'peer'")
    for column in lines.columns:
        if not isinstance(column, str) or column == "kind":
            raise LedgerError(f"settlement column {column!r} cannot be recorded")
    names = [str(c) for c in lines.columns]
    return [
        Record.from_data(
            {"kind": "settlement", **{n: _cell(v) for n, v in zip(names, row, strict=True)}}
        )
        for row in lines.itertuples(index=False, name=None)
    ]


def _cell(value: Any) -> Any:
    """A table cell as a recordable value."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, float):
        return quantize(value)
    return value


def append_records(
    store_or_url: LedgerStore | str,
    key: Ed25519PrivateKey | Path | str,
    records: Sequence[Record],
    *,
    scenario_hash: str | None,
    run: Mapping[str, Any] | None,
    clock: Callable[[], datetime] | None = None,
) -> Block:
    """Append one block of `records`, signed by `key` (a key or a private key file), and
    return it. On an empty ledger the same transaction first writes the genesis block, which
    records the key; on a ledger of another key the append is refused (`LedgerError`)."""
    if isinstance(key, str | Path):
        key = load_private_key(Path(key))
    if isinstance(store_or_url, str):
        with open_store(store_or_url, create=True) as store:
            return append_records(
                store, key, records, scenario_hash=scenario_hash, run=run, clock=clock
            )
    signer: Ed25519PrivateKey = key
    signer_key = public_key_hex(signer)
    now = clock or (lambda: datetime.now(UTC))
    appended: list[Block] = []
    url = store_or_url.url
    pinned = pinned_key(url)

    def build(tip: Tip) -> Append:
        moment = now()
        blocks = []
        if tip.empty:
            _refuse_emptied(url, pinned, signer_key)
            genesis = make_block(
                signer,
                height=0,
                previous_hash=GENESIS_PREVIOUS_HASH,
                timestamp=moment,
                records=(),
                scenario_hash=None,
                run=None,
            )
            blocks.append(genesis)
            height, previous = 1, genesis.block_hash
        else:
            last = _refuse_tip(tip, pinned, signer_key)
            height, previous = last.height + 1, last.block_hash
        block = make_block(
            signer,
            height=height,
            previous_hash=previous,
            timestamp=moment,
            records=records,
            scenario_hash=scenario_hash,
            run=run,
        )
        blocks.append(block)
        appended[:] = [block]
        return Append(tuple(blocks), sign(signer, head_bytes(block.height, block.block_hash)))

    store_or_url.append(build)
    write_pin(url, signer_key)  # after the commit: a pin exists only for a ledger with blocks
    return appended[0]


def _refuse_emptied(url: str, pinned: str | None, signer_key: str) -> None:
    """An empty ledger takes a first block, unless its key was pinned already: then blocks
    were removed (all of them, and the head)."""
    if pinned is None:
        return
    raise LedgerIntegrityError(
        0,
        Reason.TRUNCATED_CHAIN,
        f"the ledger holds no block, but its key {pinned[:16]}... is pinned in "
        f"{pin_path(url)}: its blocks were removed; refusing to start it again "
        "(to start a new ledger, move both files away)",
    )


def _refuse_tip(tip: Tip, pinned: str | None, signer_key: str) -> StoredBlock:
    """The last block, to build on; refuse to append with a key that is not the ledger's
    (`LedgerError`), or onto an end that does not check out (`LedgerIntegrityError`)."""
    if tip.genesis_header is None:
        raise LedgerIntegrityError(
            0, Reason.MISSING_BLOCK, "the ledger has no genesis block; refusing to append"
        )
    owner = _genesis_key(tip.genesis_header)
    if pinned is not None and owner != pinned:
        raise LedgerIntegrityError(
            0,
            Reason.WRONG_KEY,
            f"the genesis block names key {owner[:16]}..., the ledger's pinned key is "
            f"{pinned[:16]}...: the chain was re-signed; refusing to append",
        )
    _refuse_key(owner, signer_key)
    try:
        return check_tip(tip, owner)
    except LedgerIntegrityError as exc:
        raise LedgerIntegrityError(
            exc.height, exc.reason, f"{exc.detail}; refusing to append (see `ledger verify`)"
        ) from exc


def _genesis_key(header: str) -> str:
    try:
        return BlockHeader.parse(header).public_key
    except ValueError as exc:
        raise LedgerIntegrityError(0, Reason.CHANGED_HEADER, str(exc)) from exc


def _refuse_key(owner: str, public_key: str) -> None:
    if owner != public_key:
        raise LedgerError(
            f"this ledger belongs to key {owner[:16]}...; refusing to append "
            f"with key {public_key[:16]}..."
        )


def check_signing_key(url: str, private_key_path: Path | str) -> None:
    """Refuse, before any work is done, to append to the ledger at `url` with a key that is
    not its own (`LedgerError`), or to a ledger whose end does not check out, as the append
    itself would (`LedgerIntegrityError`: cut short, head missing or changed, last block
    changed, re-signed against its pinned key). A ledger that does not exist yet takes any
    key, unless its key is pinned (its file was removed)."""
    key = load_private_key(Path(private_key_path))
    signer_key = public_key_hex(key)
    pinned = pinned_key(url)
    if store_kind(url) == "sqlite" and not os.path.lexists(sqlite_path(url)):
        _refuse_emptied(url, pinned, signer_key)
        return
    with open_store(url, create=True) as store:
        tip = store.tip()
    if tip.empty:
        _refuse_emptied(url, pinned, signer_key)
    else:
        _refuse_tip(tip, pinned, signer_key)


def append_run(
    store_or_url: LedgerStore | str,
    private_key_path: Path | str,
    result: ClearingResult,
    settlement_lines: pd.DataFrame | None = None,
    *,
    trades: pd.DataFrame | None = None,
    first: Sequence[Record] = (),
    clock: Callable[[], datetime] | None = None,
) -> Block:
    """Append a cleared run as one block signed with the private key in `private_key_path`;
    return the block. The block records `first` (e.g. the market the run cleared), then
    `trades` (default: the result's own trades; a settlement's `priced_trades()` adds each
    trade's energy price) and, when given, the settlement lines (one per peer, e.g. the
    bills)."""
    key = load_private_key(Path(private_key_path))
    records = list(first) + trade_records(result.trades if trades is None else trades)
    if settlement_lines is not None:
        records += settlement_records(settlement_lines)
    scenario = result.scenario
    run = {
        "scenario": scenario.name,
        "design": str(result.design),
        "objective_kind": str(result.objective_kind),
        "objective": quantize(result.objective),
        "currency": scenario.currency,
        "periods": scenario.periods,
        "period_hours": scenario.period_hours,
    }
    return append_records(
        store_or_url,
        key,
        records,
        scenario_hash=scenario_hash(scenario),
        run=run,
        clock=clock,
    )
