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

from p2pmarket.core.scenario.series import Series, series
from p2pmarket.errors import ScenarioError

if TYPE_CHECKING:
    from p2pmarket.core.scenario.schema import Peer, Scenario

__all__ = ["check"]


def check(s: Scenario) -> None:
    """Cross-field rules; raise ScenarioError on the first one broken."""
    if s.period_hours <= 0:
        raise ScenarioError("period_hours", f"must be positive, got {s.period_hours}")
    if not s.peers:
        raise ScenarioError("peers", "a market needs at least one peer")
    _unique([p.id for p in s.peers], "peers", "peer id")
    _unique([c.id for c in s.communities], "communities", "community id")
    for p in s.peers:
        if not p.id.strip():
            raise ScenarioError("peers[].id", "a peer id cannot be empty")
    peer_ids = set(s.peer_ids)
    community_ids = {c.id for c in s.communities}

    _check_series(s.uniform_fee, s.periods, "uniform_fee", minimum=0.0)
    member_of: dict[str, str] = {}
    for c in s.communities:
        where = f"communities[{c.id}]"
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
        _check_series(c.intra_fee, s.periods, f"{where}.intra_fee", minimum=0.0)
        _check_series(c.export_fee, s.periods, f"{where}.export_fee", minimum=0.0)

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
        _check_series(cf.fee, s.periods, f"{where}.fee", minimum=0.0)

    if s.fee_collector is not None and s.fee_collector not in peer_ids:
        raise ScenarioError("fee_collector", f"unknown peer {s.fee_collector!r}")
    if s.links is not None:
        for i, (seller, buyer) in enumerate(s.links):
            for name in (seller, buyer):
                if name not in peer_ids:
                    raise ScenarioError(f"links[{i}]", f"unknown peer {name!r}")
            if seller == buyer:
                raise ScenarioError(f"links[{i}]", f"a peer cannot trade with itself ({seller!r})")

    for p in s.peers:
        _check_peer(p, s.periods)


def _check_peer(p: Peer, periods: int) -> None:
    where = f"peers[{p.id}]"
    _check_series(p.load_kw, periods, f"{where}.load_kw", minimum=0.0)
    _check_series(p.export_fee, periods, f"{where}.export_fee", minimum=0.0)
    g = p.generation
    if g is not None:
        if p.role == "consumer":
            raise ScenarioError(
                f"{where}.generation", "a consumer cannot generate; declare the peer a prosumer"
            )
        _check_series(g.min_kw, periods, f"{where}.generation.min_kw", minimum=0.0)
        _check_series(g.max_kw, periods, f"{where}.generation.max_kw", minimum=0.0)
        _check_series(g.offer_per_kwh, periods, f"{where}.generation.offer_per_kwh")
        low, high = series(g.min_kw, periods), series(g.max_kw, periods)
        bad = np.flatnonzero(low > high)
        if bad.size:
            t = int(bad[0])
            raise ScenarioError(
                f"{where}.generation.min_kw",
                f"{low[t]:g} is greater than max_kw {high[t]:g} (period {t})",
            )
    if p.buy_price_per_kwh is not None:
        if p.role != "grid":
            raise ScenarioError(
                f"{where}.buy_price_per_kwh",
                f"only the grid buys energy at a price, not a {p.role}",
            )
        _check_series(p.buy_price_per_kwh, periods, f"{where}.buy_price_per_kwh")
        buy = series(p.buy_price_per_kwh, periods)
        offer = series(g.offer_per_kwh if g else None, periods, default=np.inf)
        bad = np.flatnonzero(buy > offer)
        if bad.size:
            t = int(bad[0])
            raise ScenarioError(
                f"{where}.buy_price_per_kwh",
                f"{buy[t]:g} exceeds the grid's own offer {offer[t]:g} in period {t}"
                " (the grid would buy its own energy)",
            )
    st = p.storage
    if st is not None:
        if p.role == "consumer":
            raise ScenarioError(
                f"{where}.storage", "a consumer cannot sell stored energy; declare it a prosumer"
            )
        for name in ("capacity_kwh", "power_kw"):
            value = getattr(st, name)
            if value <= 0:
                raise ScenarioError(f"{where}.storage.{name}", f"must be positive, got {value:g}")
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
        _check_series(block.max_kw, periods, f"{where}.flexible_load[{b}].max_kw", minimum=0.0)
        _check_series(block.price_per_kwh, periods, f"{where}.flexible_load[{b}].price_per_kwh")


def _check_series(
    value: Series | None, periods: int, field: str, minimum: float | None = None
) -> None:
    if value is None:
        return
    if isinstance(value, tuple) and len(value) != periods:
        raise ScenarioError(
            field, f"{len(value)} values given, expected {periods} (one per period)"
        )
    if minimum is not None:
        values = series(value, periods)
        bad = np.flatnonzero(values < minimum)
        if bad.size:
            t = int(bad[0])
            where = f" in period {t}" if isinstance(value, tuple) else ""
            raise ScenarioError(field, f"must be >= {minimum:g}, got {values[t]:g}{where}")


def _unique(ids: Sequence[str], field: str, what: str) -> None:
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    if repeated:
        raise ScenarioError(field, f"duplicate {what} {repeated[0]!r}")
