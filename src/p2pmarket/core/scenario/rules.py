"""Cross-field rules of a scenario: what the types alone cannot say (SPEC C1).

`check(scenario)` runs on every `Scenario`, however it is built (`Scenario.from_dict`, a
direct `Scenario(...)`, `replace`), and raises the first `ScenarioError` it finds, naming the
field (with peer and community ids) and the value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from p2pmarket.core.scenario.limits import (
    MAX_ENERGY_KWH,
    MAX_PERIOD_HOURS,
    MAX_POWER_KW,
    MAX_PRICE_PER_KWH,
    MIN_PERIOD_HOURS,
    Limits,
)
from p2pmarket.core.scenario.messages import label, number, plural
from p2pmarket.core.scenario.series import FloatArray, Series
from p2pmarket.errors import ScenarioError

if TYPE_CHECKING:
    from p2pmarket.core.scenario.schema import Peer, Scenario

__all__ = ["check", "check_size"]

_DOC = "see docs/scenario-limits.md"


def check_size(periods: object, peers: object, limits: Limits, communities: object = None) -> None:
    """Refuse a scenario larger than `limits`, from the raw `periods`, `peers` and
    `communities` fields, before anything is validated or allocated (values of other types
    are left to the schema)."""
    for field, items in (("peers", peers), ("communities", communities)):
        if not isinstance(items, Sequence) or isinstance(items, str):
            continue
        if len(items) > limits.max_peers:
            raise ScenarioError(
                field,
                f"{len(items):,} {field} are more than the limit of {limits.max_peers:,}"
                f" (raise it with P2PMARKET_MAX_PEERS or Limits(max_peers=...); {_DOC})",
            )
    if not isinstance(periods, int) or isinstance(periods, bool):
        return
    if periods > limits.max_periods:
        raise ScenarioError(
            "periods",
            f"{number(periods)} is more than the limit of {limits.max_periods:,} periods"
            f" (raise it with P2PMARKET_MAX_PERIODS or Limits(max_periods=...); {_DOC})",
        )
    if isinstance(peers, Sequence) and not isinstance(peers, str) and periods > 0:
        cells = periods * len(peers)
        if cells > limits.max_peer_periods:
            raise ScenarioError(
                "periods",
                f"{plural(len(peers), 'peer')} x {periods:,} periods make {cells:,}"
                f" peer-periods, more than the limit of {limits.max_peer_periods:,}"
                " (raise it with P2PMARKET_MAX_PEER_PERIODS or"
                f" Limits(max_peer_periods=...); {_DOC})",
            )


def check(s: Scenario) -> None:
    """Cross-field rules; raise ScenarioError on the first one broken."""
    if not MIN_PERIOD_HOURS <= s.period_hours <= MAX_PERIOD_HOURS:
        raise ScenarioError(
            "period_hours",
            f"must be positive, got {s.period_hours:g}"
            if s.period_hours <= 0
            else f"{s.period_hours:g} h is out of range: a period lasts from one second"
            f" (1/3600 h) to a leap year ({MAX_PERIOD_HOURS:,} h); {_DOC}",
        )
    if not s.peers:
        raise ScenarioError("peers", "a market needs at least one peer")
    _unique([p.id for p in s.peers], "peers", "peer id")
    _unique([c.id for c in s.communities], "communities", "community id")
    for p in s.peers:
        if not p.id.strip():
            raise ScenarioError("peers[].id", "a peer id cannot be empty")
    peer_ids = set(s.peer_ids)
    community_ids = {c.id for c in s.communities}

    _check_series(s.uniform_fee, s.periods, "uniform_fee", minimum=0.0, limit=_PRICE)
    member_of: dict[str, str] = {}
    for i, c in enumerate(s.communities):
        where = f"communities[{label(c.id, i)}]"
        if not c.members:
            raise ScenarioError(f"{where}.members", "a community needs at least one member")
        for member in c.members:
            if member not in peer_ids:
                raise ScenarioError(f"{where}.members", f"unknown peer {member!r}")
            if member in member_of:
                raise ScenarioError(
                    f"{where}.members",
                    f"peer {member!r} is already a member of community {member_of[member]!r}",
                )
            member_of[member] = c.id
        _check_series(c.intra_fee, s.periods, f"{where}.intra_fee", minimum=0.0, limit=_PRICE)
        _check_series(c.export_fee, s.periods, f"{where}.export_fee", minimum=0.0, limit=_PRICE)

    seen_pairs: set[tuple[str, str]] = set()
    for i, cf in enumerate(s.community_fees):
        where = f"community_fees[{i}]"
        for key, cid in (("from", cf.from_), ("to", cf.to)):
            if cid not in community_ids:
                raise ScenarioError(f"{where}.{key}", f"unknown community {cid!r}")
        if cf.from_ == cf.to:
            raise ScenarioError(
                where, f"from and to are both {cf.from_!r}; use the community's intra_fee"
            )
        if (cf.from_, cf.to) in seen_pairs:
            raise ScenarioError(where, f"the pair {cf.from_!r} -> {cf.to!r} is given twice")
        seen_pairs.add((cf.from_, cf.to))
        _check_series(cf.fee, s.periods, f"{where}.fee", minimum=0.0, limit=_PRICE)

    if s.fee_collector is not None and s.fee_collector not in peer_ids:
        raise ScenarioError("fee_collector", f"unknown peer {s.fee_collector!r}")
    if s.links is not None:
        for i, (seller, buyer) in enumerate(s.links):
            for name in (seller, buyer):
                if name not in peer_ids:
                    raise ScenarioError(f"links[{i}]", f"unknown peer {name!r}")
            if seller == buyer:
                raise ScenarioError(f"links[{i}]", f"a peer cannot trade with itself ({seller!r})")

    for i, p in enumerate(s.peers):
        _check_peer(p, s.periods, f"peers[{label(p.id, i)}]")
    _check_negative_flexible_prices(s)


# (unit, largest magnitude, what it is) of each family of numbers
_POWER = ("kW", MAX_POWER_KW, "10 GW")
_ENERGY = ("kWh", MAX_ENERGY_KWH, "1 TWh")
_PRICE = ("per kWh", MAX_PRICE_PER_KWH, "in the scenario's currency")


def _check_peer(p: Peer, periods: int, where: str) -> None:
    _check_series(p.load_kw, periods, f"{where}.load_kw", minimum=0.0, limit=_POWER)
    _check_series(p.export_fee, periods, f"{where}.export_fee", minimum=0.0, limit=_PRICE)
    g = p.generation
    if g is not None:
        if p.role == "consumer":
            raise ScenarioError(
                f"{where}.generation", "a consumer cannot generate; declare the peer a prosumer"
            )
        gen = f"{where}.generation"
        _check_series(g.min_kw, periods, f"{gen}.min_kw", minimum=0.0, limit=_POWER)
        _check_series(g.max_kw, periods, f"{gen}.max_kw", minimum=0.0, limit=_POWER)
        _check_series(g.offer_per_kwh, periods, f"{gen}.offer_per_kwh", limit=_PRICE)
        low, high = np.broadcast_arrays(_values(g.min_kw), _values(g.max_kw))
        t = _first(low > high)
        if t is not None:
            raise ScenarioError(
                f"{gen}.min_kw",
                f"{low.flat[t]:g} is greater than max_kw {high.flat[t]:g}{_in_period(t, low)}",
            )
    if p.buy_price_per_kwh is not None:
        if p.role != "grid":
            raise ScenarioError(
                f"{where}.buy_price_per_kwh",
                f"only the grid buys energy at a price, not a {p.role}",
            )
        _check_series(p.buy_price_per_kwh, periods, f"{where}.buy_price_per_kwh", limit=_PRICE)
        buy, offer = np.broadcast_arrays(
            _values(p.buy_price_per_kwh), _values(g.offer_per_kwh) if g else np.asarray(np.inf)
        )
        t = _first(buy > offer)
        if t is not None:
            raise ScenarioError(
                f"{where}.buy_price_per_kwh",
                f"{buy.flat[t]:g} exceeds the grid's own offer {offer.flat[t]:g}"
                f"{_in_period(t, buy)} (the grid would buy its own energy)",
            )
    st = p.storage
    if st is not None:
        if p.role == "consumer":
            raise ScenarioError(
                f"{where}.storage", "a consumer cannot sell stored energy; declare it a prosumer"
            )
        for name, limit in (("capacity_kwh", _ENERGY), ("power_kw", _POWER)):
            value = getattr(st, name)
            if value <= 0:
                raise ScenarioError(f"{where}.storage.{name}", f"must be positive, got {value:g}")
            _check_series(value, periods, f"{where}.storage.{name}", limit=limit)
        for name in ("charge_efficiency", "discharge_efficiency"):
            value = getattr(st, name)
            if not 0 < value <= 1:
                raise ScenarioError(f"{where}.storage.{name}", f"must be in (0, 1], got {value:g}")
        for name in ("initial_soc", "final_soc"):
            value = getattr(st, name)
            if not 0 <= value <= 1:
                raise ScenarioError(
                    f"{where}.storage.{name}",
                    f"must be a fraction of capacity in [0, 1], got {value:g}",
                )
    for b, block in enumerate(p.flexible_load):
        flex = f"{where}.flexible_load[{b}]"
        _check_series(block.max_kw, periods, f"{flex}.max_kw", minimum=0.0, limit=_POWER)
        _check_series(block.price_per_kwh, periods, f"{flex}.price_per_kwh", limit=_PRICE)


def _check_negative_flexible_prices(s: Scenario) -> None:
    """A flexible block is served only when energy costs at most its price. A negative price
    therefore means "serve only when consuming is paid for", which can happen only where some
    energy is priced below zero: a negative offer, a negative grid buy price, or must-run
    generation (`min_kw > 0`) that the market has to absorb. Without any of these the block
    would never be served, so its price is refused as a mistake."""
    blocks = [
        (f"peers[{label(p.id, i)}].flexible_load[{b}].price_per_kwh", block.price_per_kwh)
        for i, p in enumerate(s.peers)
        for b, block in enumerate(p.flexible_load)
        if float(np.min(_values(block.price_per_kwh))) < 0
    ]
    if not blocks:
        return
    for p in s.peers:
        g = p.generation
        if g is not None and (
            float(np.min(_values(g.offer_per_kwh))) < 0 or float(np.max(_values(g.min_kw))) > 0
        ):
            return
        if p.buy_price_per_kwh is not None and float(np.min(_values(p.buy_price_per_kwh))) < 0:
            return
    field, price = blocks[0]
    values = _values(price)
    t = _first(values < 0) or 0  # the block was selected for a negative value
    raise ScenarioError(
        field,
        f"{values.flat[t]:g} is negative{_in_period(t, values)}: a flexible block is served only"
        " when energy costs at most its price, and no energy in this market is priced below 0"
        " (no negative offer or buy price, no must-run min_kw), so it would never be served;"
        " give a price >= 0 or remove the block",
    )


def _check_series(
    value: Series | None,
    periods: int,
    field: str,
    minimum: float | None = None,
    limit: tuple[str, float, str] | None = None,
) -> None:
    """Length, lower bound and magnitude of a scalar or per-period series, without expanding
    a scalar to `periods` values (`periods` may be large; a scalar costs one number)."""
    if value is None:
        return
    if isinstance(value, tuple) and len(value) != periods:
        raise ScenarioError(
            field,
            f"{plural(len(value), 'value')} given, expected {periods} (one per period)",
        )
    values = _values(value)
    if minimum is not None:
        t = _first(values < minimum)
        if t is not None:
            raise ScenarioError(
                field, f"must be >= {minimum:g}, got {values.flat[t]:g}{_in_period(t, values)}"
            )
    if limit is not None:
        unit, largest, what = limit
        t = _first(np.abs(values) > largest)
        if t is not None:
            raise ScenarioError(
                field,
                f"{values.flat[t]:g} {unit}{_in_period(t, values)} is out of range: at most"
                f" {largest:g} {unit} in magnitude ({what}); {_DOC}",
            )


def _values(value: Series) -> FloatArray:
    """A scalar as a 0-d array, a per-period series as a 1-d array: never expanded."""
    return np.asarray(value, dtype=float)


def _first(bad: npt.NDArray[np.bool_]) -> int | None:
    """Position of the first True (0 for a true 0-d array), or None."""
    hits = np.flatnonzero(bad)
    return int(hits[0]) if hits.size else None


def _in_period(t: int, values: npt.NDArray[np.generic]) -> str:
    return f" in period {t}" if values.ndim else ""


def _unique(ids: Sequence[str], field: str, what: str) -> None:
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    if repeated:
        raise ScenarioError(field, f"duplicate {what} {repeated[0]!r}")
