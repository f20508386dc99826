"""Imbalance settlement: what the meters read against what the market cleared (issue 13).

After delivery each member's metered net energy per period is compared with its cleared
schedule, and the deviation is settled with the grid, the counterparty of every imbalance,
at the grid's tariff:

    scheduled_kwh = net_import_kw * period_hours         (the cleared dispatch)
    imbalance_kwh = metered_kwh - scheduled_kwh           (> 0: short, < 0: long)
    imbalance_cost = offer_per_kwh[t] * imbalance_kwh        if short (buys from the grid)
                   = buy_price_per_kwh[t] * imbalance_kwh    if long  (sells to the grid)

with the grid's `generation.offer_per_kwh` and `buy_price_per_kwh` (0 when it has none) of
that period. Positive energy is drawn from the network, negative fed into it. No fee is
charged on an imbalance: fees stay what the market settlement charged. The grid's own line
closes the balance: its imbalance is minus the members' sum, and so is its imbalance cost,

    sum of members' imbalance_cost + grid's imbalance_cost = 0     (budget balance)

A bill shows the scheduled energy, the fees and the imbalance apart:

    market_bill = scheduled_energy_cost + fees,   total = market_bill + imbalance_cost

where `scheduled_energy_cost` = paid_energy - received_energy and `fees` = paid_fees -
received_fees of the market settlement. `cost_total` = `cost_market` + `imbalance_cost` is
the peer's cost account (with its generation cost and the value of its demand served, as
`Settlement.bills` has it) with the imbalance added.

Readings are refused, one line naming the field and the value, when a member has no
reading for a period (the schedule is never assumed), a peer is unknown or is the grid, a
period is out of range, a peer and period are read twice, or a value is not a finite
number of at most what a 10 GW connection moves in one period. Pure: no file, no solver.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import NoReturn

import numpy as np
import pandas as pd

from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import FloatArray, Peer, Scenario, series
from p2pmarket.core.scenario.limits import MAX_POWER_KW
from p2pmarket.core.scenario.messages import label, plural, show, suggest
from p2pmarket.core.settlement.settle import Settlement
from p2pmarket.errors import OptionError, ScenarioError

__all__ = [
    "IMBALANCE_BILL_COLUMNS",
    "IMBALANCE_LINE_COLUMNS",
    "READING_COLUMNS",
    "ImbalanceSettlement",
    "check_readings",
    "schedule_readings",
    "settle_imbalance",
]

READING_COLUMNS = ("peer", "period", "net_kwh")
"""A reading: the member's id, the period (0-based) and its metered net energy in kWh over
the period (positive: drawn from the network; negative: fed into it)."""

IMBALANCE_LINE_COLUMNS = (
    "period",
    "peer",
    "declared_role",
    "scheduled_kwh",
    "metered_kwh",
    "imbalance_kwh",
    "short_kwh",
    "long_kwh",
    "price_per_kwh",
    "imbalance_cost",
)
"""One row per period and peer (the grid's too). `imbalance_kwh` = metered - scheduled;
`short_kwh` and `long_kwh` are its positive and negative parts; `price_per_kwh` is the price
it is settled at (the grid's tariff when short, its buy price otherwise; empty for the grid,
whose line is the members' sum)."""

IMBALANCE_BILL_COLUMNS = (
    "peer",
    "declared_role",
    "scheduled_kwh",
    "metered_kwh",
    "imbalance_kwh",
    "short_kwh",
    "long_kwh",
    "scheduled_energy_cost",
    "fees",
    "market_bill",
    "imbalance_cost",
    "total",
    "cost_market",
    "cost_total",
)
"""One row per peer over the horizon: `market_bill` = `scheduled_energy_cost` + `fees` (as
settled by the market), `total` = `market_bill` + `imbalance_cost`, `cost_total` =
`cost_market` + `imbalance_cost`."""

_DOC = "see docs/imbalance.md"
_TOLERANCE_KWH = 1e-6


@dataclass(frozen=True)
class ImbalanceSettlement:
    """The imbalance of one delivered market: `lines` (`IMBALANCE_LINE_COLUMNS`) and `bills`
    (`IMBALANCE_BILL_COLUMNS`), in the scenario's `currency`; `grid` is the counterparty."""

    currency: str
    grid: str
    lines: pd.DataFrame
    bills: pd.DataFrame

    @property
    def paid_by_members(self) -> float:
        """What the members pay for their imbalance, net (negative: they are paid)."""
        members = self.bills["peer"] != self.grid
        return float(self.bills.loc[members, "imbalance_cost"].sum())

    @property
    def received_by_grid(self) -> float:
        """What the grid receives for the members' imbalance (= `paid_by_members`)."""
        grid = self.bills["peer"] == self.grid
        return -float(self.bills.loc[grid, "imbalance_cost"].sum())


def settle_imbalance(
    result: ClearingResult, settlement: Settlement, readings: pd.DataFrame
) -> ImbalanceSettlement:
    """Settle each member's deviation from `result`'s schedule at the grid's tariff.

    `settlement` must be the settlement of `result`'s dispatch (from `run_market`, pass
    `run.billed`, the clearing the bills come from); `readings` has `READING_COLUMNS`, one
    row per member (every peer but the grid) and period. What is refused: `check_readings`.
    """
    s = result.scenario
    grid = _the_grid(s)
    periods, n = s.periods, len(s.peers)
    g = s.peer_ids.index(grid.id)
    scheduled = _scheduled_kwh(result)
    _check_settlement(s, settlement, scheduled)

    r = check_readings(s, readings)
    metered = np.zeros((periods, n))
    metered[r["period"].to_numpy(np.int64), _peer_index(s, r["peer"])] = r["net_kwh"].to_numpy()
    is_grid = np.arange(n) == g
    deviation = np.where(is_grid, 0.0, metered - scheduled)
    offer = series(grid.generation.offer_per_kwh if grid.generation else None, periods)
    feed_in = series(grid.buy_price_per_kwh, periods)
    price = np.where(deviation > 0, offer[:, None], feed_in[:, None])
    cost = np.where(is_grid, 0.0, price * deviation)
    # The grid closes the balance: it delivers what members are short and takes what they
    # are long, and receives what they pay.
    deviation[:, g] = -deviation.sum(axis=1)
    cost[:, g] = -cost.sum(axis=1)
    metered[:, g] = scheduled[:, g] + deviation[:, g]
    price[:, g] = np.nan

    roles = np.array([str(p.role) for p in s.peers], dtype=object)
    lines = pd.DataFrame(
        {
            "period": np.repeat(np.arange(periods), n),
            "peer": np.tile(np.array(s.peer_ids, dtype=object), periods),
            "declared_role": np.tile(roles, periods),
            "scheduled_kwh": scheduled.ravel(),
            "metered_kwh": metered.ravel(),
            "imbalance_kwh": deviation.ravel(),
            "short_kwh": np.maximum(deviation, 0.0).ravel(),
            "long_kwh": np.maximum(-deviation, 0.0).ravel(),
            "price_per_kwh": price.ravel(),
            "imbalance_cost": cost.ravel(),
        }
    )
    lines[list(IMBALANCE_LINE_COLUMNS[3:])] += 0.0  # no -0 (a long kWh at a price of 0)
    return ImbalanceSettlement(s.currency, grid.id, lines, _bills(settlement, lines))


def schedule_readings(result: ClearingResult) -> pd.DataFrame:
    """Readings that follow `result`'s schedule exactly (no imbalance): one row per member
    and period, period-major, with `READING_COLUMNS`."""
    s = result.scenario
    scheduled = _scheduled_kwh(result)
    members = np.array([p.role != "grid" for p in s.peers])
    ids = np.array(s.peer_ids, dtype=object)
    return pd.DataFrame(
        {
            "peer": np.tile(ids[members], s.periods),
            "period": np.repeat(np.arange(s.periods), int(members.sum())),
            "net_kwh": scheduled[:, members].ravel(),
        }
    )


def check_readings(s: Scenario, readings: pd.DataFrame) -> pd.DataFrame:
    """`readings` checked against `s`: exactly the columns `READING_COLUMNS`; every `peer` a
    member of `s` (not the grid), every `period` a whole number in [0, periods), every
    `net_kwh` a finite number of magnitude at most `MAX_POWER_KW * period_hours` (what a
    10 GW connection moves in one period); one reading per member and period, none missing.
    Refused with a one-line `ScenarioError` whose field is `readings` or `readings.COLUMN`
    and whose message names the row (1-based: line row + 1 of a CSV file), or the peer and
    period of a missing reading. Returns the readings with `period` as int64."""
    if not isinstance(readings, pd.DataFrame):
        raise ScenarioError(
            "readings",
            f"expected a table (pandas DataFrame) with columns {', '.join(READING_COLUMNS)},"
            f" got a {type(readings).__name__}",
        )
    _check_columns(readings.columns)
    peer = readings["peer"]
    if len(readings) and pd.api.types.infer_dtype(peer, skipna=False) != "string":
        row = next(i for i, v in enumerate(peer) if not isinstance(v, str))
        _refuse(row, "peer", f"expected a peer id (text), got {show(_item(peer.iloc[row]))}")
    where = _peer_index(s, peer)
    unknown = np.flatnonzero(where < 0)
    if unknown.size:
        row = int(unknown[0])
        _refuse(
            row,
            "peer",
            f"{show(peer.iloc[row])} is not a peer of the scenario{_closest(peer.iloc[row], s)}",
        )
    is_grid = np.array([p.role == "grid" for p in s.peers])[where]
    if is_grid.any():
        row = int(np.flatnonzero(is_grid)[0])
        _refuse(
            row,
            "peer",
            f"{show(_item(peer.iloc[row]))} is the grid, the counterparty of every imbalance: it is"
            " not metered here",
        )
    period = _whole_periods(readings["period"], s.periods)
    net = _energies(readings["net_kwh"], MAX_POWER_KW * s.period_hours)

    n = len(s.peers)
    key = period * n + where
    repeated = np.flatnonzero(pd.Index(key).duplicated())
    if repeated.size:
        row = int(repeated[0])
        first = int(np.flatnonzero(key == key[row])[0])
        raise ScenarioError(
            "readings",
            f"row {row + 1}: a second reading for peer {show(peer.iloc[row])}"
            f" in period {period[row]}"
            f" (the first is row {first + 1})",
        )
    read = np.zeros(s.periods * n, dtype=bool)
    read[key] = True
    members = np.array([p.role != "grid" for p in s.peers])
    missing = ~read.reshape(s.periods, n) & members[None, :]
    if missing.any():
        t, i = (int(x[0]) for x in np.nonzero(missing))
        raise ScenarioError(
            "readings",
            f"no reading for peer {show(s.peer_ids[i])} in period {t}"
            f" ({int(missing.sum()):,} of {plural(int(members.sum()) * s.periods, 'reading')}"
            f" missing): a missing reading is refused, never assumed to follow the schedule;"
            f" {_DOC}",
        )
    return pd.DataFrame({"peer": peer.to_numpy(), "period": period, "net_kwh": net})


# --- helpers ---------------------------------------------------------------------------


def _the_grid(s: Scenario) -> Peer:
    """The one grid peer, the counterparty of every imbalance, with a tariff."""
    grids = [p for p in s.peers if p.role == "grid"]
    if len(grids) != 1:
        what = "no grid peer" if not grids else f"{len(grids)} grid peers"
        raise ScenarioError(
            "peers",
            f"an imbalance is settled with one grid at its tariff; the scenario has {what}",
        )
    grid = grids[0]
    if grid.generation is None:
        raise ScenarioError(
            f"peers[{label(grid.id, s.peer_ids.index(grid.id))}].generation",
            "the grid sells no energy, so a member that is short has no tariff to pay",
        )
    return grid


def _scheduled_kwh(result: ClearingResult) -> FloatArray:
    """(periods, peers) net energy drawn from the network as cleared, in kWh."""
    s = result.scenario
    d = result.dispatch
    scheduled = np.zeros((s.periods, len(s.peers)))
    where = _peer_index(s, d["peer"])
    scheduled[d["period"].to_numpy(np.int64), where] = (
        d["net_import_kw"].to_numpy(float) * s.period_hours
    )
    return scheduled


def _check_settlement(s: Scenario, settlement: Settlement, scheduled: FloatArray) -> None:
    """The settlement bills the same schedule: bought - sold = scheduled, per peer and period."""
    lines = settlement.lines
    key = pd.MultiIndex.from_arrays(
        [np.repeat(np.arange(s.periods), len(s.peers)), np.tile(s.peer_ids, s.periods)]
    )
    billed = (
        (lines["bought_kwh"] - lines["sold_kwh"])
        .set_axis(pd.MultiIndex.from_frame(lines[["period", "peer"]]))
        .reindex(key)
        .to_numpy(float)
    )
    gap = np.abs(billed - scheduled.ravel())
    bad = ~(gap <= _TOLERANCE_KWH * np.maximum(1.0, np.abs(scheduled.ravel())))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        t, peer = divmod(i, len(s.peers))
        raise OptionError(
            "settlement",
            f"it bills another schedule than the clearing's (peer {show(s.peer_ids[peer])},"
            f" period {t}): settle the clearing the bills come from (run_market's"
            " `run.billed`, a system-cost clearing)",
        )


def _peer_index(s: Scenario, peers: pd.Series) -> np.ndarray:
    return np.asarray(pd.Index(s.peer_ids).get_indexer(pd.Index(peers)), dtype=np.int64)


def _check_columns(columns: pd.Index) -> None:
    for name in READING_COLUMNS:
        if name not in columns:
            raise ScenarioError(
                "readings",
                f"no column {name!r}: a reading is {', '.join(READING_COLUMNS)}; {_DOC}",
            )
    for name in columns:
        if name not in READING_COLUMNS:
            raise ScenarioError(
                "readings",
                f"unknown column {show(name)} (refused, not ignored);"
                f" {suggest(name, READING_COLUMNS)}",
            )
    if len(columns) != len(READING_COLUMNS):
        raise ScenarioError("readings", "a column is given twice")


def _whole_periods(column: pd.Series, periods: int) -> np.ndarray:
    """The periods as int64, each a whole number in [0, periods)."""
    if not _numeric(column):
        row = _first_not_number(column)
        _refuse(row, "period", f"expected a whole number, got {show(_item(column.iloc[row]))}")
    values = column.to_numpy(float)
    bad_at = np.flatnonzero(~((values >= 0) & (values < periods) & (values == np.floor(values))))
    if bad_at.size:
        row = int(bad_at[0])
        _refuse(
            row,
            "period",
            f"{show(_item(column.iloc[row]))} is not a period of the scenario"
            f" (a whole number from 0 to {periods - 1})",
        )
    return values.astype(np.int64)


def _energies(column: pd.Series, bound_kwh: float) -> FloatArray:
    """The energies as float64, each finite and of magnitude at most `bound_kwh`."""
    if not _numeric(column):
        row = _first_not_number(column)
        _refuse(row, "net_kwh", f"expected a number of kWh, got {show(_item(column.iloc[row]))}")
    values = column.to_numpy(float)
    not_finite = np.flatnonzero(~np.isfinite(values))
    if not_finite.size:
        row = int(not_finite[0])
        _refuse(row, "net_kwh", f"expected a finite number, got {values[row]}")
    too_large = np.flatnonzero(np.abs(values) > bound_kwh)
    if too_large.size:
        row = int(too_large[0])
        _refuse(
            row,
            "net_kwh",
            f"{values[row]:g} kWh is out of range: more than a 10 GW connection moves in one"
            f" period ({bound_kwh:g} kWh); {_DOC}",
        )
    return values


_NUMBERS = frozenset({"integer", "floating", "mixed-integer-float", "empty"})


def _numeric(column: pd.Series) -> bool:
    """Numbers only (no text, no booleans), found without a Python loop over the rows."""
    return pd.api.types.infer_dtype(column, skipna=False) in _NUMBERS


def _first_not_number(column: pd.Series) -> int:
    """The first row that is not a number (run only to name it in a refusal)."""
    for row, value in enumerate(column):
        if isinstance(value, bool | np.bool_) or not isinstance(
            value, int | float | np.integer | np.floating
        ):
            return row
    return 0


def _item(value: object) -> object:
    """A numpy scalar as the Python value it holds (shown as `1.5`, not `np.float64(1.5)`)."""
    return value.item() if isinstance(value, np.generic) else value


def _closest(peer: str, s: Scenario) -> str:
    """`; did you mean 'P2'?` for a close peer id; nothing when none is close or when the
    scenario has too many peers to look (a message never lists the peers)."""
    if len(s.peers) > 1_000 or len(peer) > 200:
        return ""
    close = difflib.get_close_matches(peer, s.peer_ids, n=1, cutoff=0.6)
    return f"; did you mean {show(close[0])}?" if close else ""


def _refuse(row: int, column: str, message: str) -> NoReturn:
    raise ScenarioError(f"readings.{column}", f"row {row + 1}: {message}")


def _bills(settlement: Settlement, lines: pd.DataFrame) -> pd.DataFrame:
    energy = ["scheduled_kwh", "metered_kwh", "imbalance_kwh", "short_kwh", "long_kwh"]
    sums = lines.groupby("peer", sort=False)[[*energy, "imbalance_cost"]].sum()
    market = settlement.bills.set_index("peer").reindex(sums.index)
    bills = sums.assign(
        scheduled_energy_cost=market["paid_energy"] - market["received_energy"],
        fees=market["paid_fees"] - market["received_fees"],
        cost_market=market["cost_market"],
    )
    bills["market_bill"] = bills["scheduled_energy_cost"] + bills["fees"]
    bills["total"] = bills["market_bill"] + bills["imbalance_cost"]
    bills["cost_total"] = bills["cost_market"] + bills["imbalance_cost"]
    # Sums of many products leave rounding dust (-4e-16): report it as the zero it is.
    bills = bills.mask(bills.abs() < 1e-9, 0.0)
    roles = lines.drop_duplicates("peer").set_index("peer")["declared_role"]
    bills["declared_role"] = roles.reindex(bills.index)
    return bills.reset_index().loc[:, list(IMBALANCE_BILL_COLUMNS)]
