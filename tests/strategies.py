"""Hypothesis strategies producing random, valid and feasible p2pmarket scenario dicts.

The dicts follow the scenario-file format of SPEC section 5 with every time series inline
(a scalar or a list of ``periods`` values). Feasibility is guaranteed by construction:

* the first peer is always ``grid`` (role grid) with zero minimum generation and a maximum
  large enough to cover every load in every period, and it can always reach every peer
  (a restricted ``links`` list always contains ``[grid, P]`` for every peer P; the community
  design ignores ``links`` and always routes through managers);
* a positive minimum generation is only drawn for prosumers and never exceeds the peer's own
  load in that period, so it can always be consumed locally;
* storage has ``final_soc <= initial_soc`` (staying idle is feasible), flexible blocks have a
  lower bound of 0, and a grid buy price, when present, is strictly below the grid's offer.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

__all__ = ["scenario_dicts"]

GRID_MAX_KW = 5000.0  # > 11 peers x 200 kW of load
MAX_LOAD_KW = 200.0


def _num(draw: st.DrawFn, low: float, high: float, places: int) -> float:
    """A float in [low, high] rounded to ``places`` decimals (and kept inside the range)."""
    value = round(draw(st.floats(low, high, allow_nan=False, allow_infinity=False)), places)
    return min(max(value, low), high)


def _expand(value: float | list[float], periods: int) -> list[float]:
    return list(value) if isinstance(value, list) else [value] * periods


def _series(
    draw: st.DrawFn, periods: int, low: float, high: float, places: int
) -> float | list[float]:
    """A scalar or a list of ``periods`` values, each in [low, high]."""
    if draw(st.booleans()):
        return _num(draw, low, high, places)
    return [_num(draw, low, high, places) for _ in range(periods)]


@st.composite
def scenario_dicts(
    draw: st.DrawFn,
    max_peers: int = 12,
    max_periods: int = 6,
    storage: bool = True,
    flexible: bool = True,
) -> dict[str, Any]:
    """Random valid, feasible scenario dict (SPEC section 5 format, inline series only)."""
    n_peers = draw(st.integers(2, max(2, max_peers)))
    periods = draw(st.integers(1, max(1, max_periods)))
    period_hours = draw(st.sampled_from([0.5, 1.0, 0.25]))

    # ---- the grid ------------------------------------------------------------------------
    grid_offer = _series(draw, periods, 0.08, 0.12, 4)
    grid: dict[str, Any] = {
        "id": "grid",
        "role": "grid",
        "generation": {"min_kw": 0.0, "max_kw": GRID_MAX_KW, "offer_per_kwh": grid_offer},
        "export_fee": _num(draw, 0.0, 0.03, 4),
        "buy_price_per_kwh": None,
    }
    if draw(st.booleans()):
        # strictly below the offer in every period
        offers = _expand(grid_offer, periods)
        if isinstance(grid_offer, float) and draw(st.booleans()):
            grid["buy_price_per_kwh"] = round(grid_offer * _num(draw, 0.2, 0.9, 3), 4)
        else:
            grid["buy_price_per_kwh"] = [round(o * _num(draw, 0.2, 0.9, 3), 4) for o in offers]
    peers: list[dict[str, Any]] = [grid]

    # ---- the other peers -----------------------------------------------------------------
    for i in range(1, n_peers):
        pid = f"P{i + 1}"
        role = draw(st.sampled_from(["producer", "prosumer", "consumer"]))
        peer: dict[str, Any] = {"id": pid, "role": role}
        load: float | list[float] = 0.0
        if role in ("consumer", "prosumer"):
            load = _series(draw, periods, 0.0, MAX_LOAD_KW, 2)
            peer["load_kw"] = load
        if role in ("producer", "prosumer"):
            gen_max = _series(draw, periods, 0.0, MAX_LOAD_KW, 2)
            gen_min: float | list[float] = 0.0
            if role == "prosumer" and draw(st.integers(0, 4)) == 0:
                # positive minimum, never above own load nor the maximum in any period
                frac = _num(draw, 0.0, 1.0, 2)
                caps = [
                    min(a, b)
                    for a, b in zip(_expand(load, periods), _expand(gen_max, periods), strict=True)
                ]
                gen_min = [round(frac * c, 2) for c in caps]
                gen_min = [min(g, c) for g, c in zip(gen_min, caps, strict=True)]
            peer["generation"] = {
                "min_kw": gen_min,
                "max_kw": gen_max,
                "offer_per_kwh": _series(draw, periods, 0.02, 0.1, 4),
            }
        if draw(st.booleans()):
            peer["export_fee"] = _num(draw, 0.0, 0.03, 4)
        # A consumer never exports, so batteries belong to producers and prosumers.
        if storage and role != "consumer" and draw(st.integers(0, 2)) == 0:
            initial = _num(draw, 0.0, 1.0, 2)
            peer["storage"] = {
                "capacity_kwh": _num(draw, 1.0, 100.0, 1),
                "power_kw": _num(draw, 1.0, 50.0, 1),
                "charge_efficiency": _num(draw, 0.71, 1.0, 3),
                "discharge_efficiency": _num(draw, 0.71, 1.0, 3),
                "initial_soc": initial,
                "final_soc": round(initial * _num(draw, 0.0, 1.0, 2), 2),
            }
        if flexible and draw(st.integers(0, 3)) == 0:
            peer["flexible_load"] = [
                {
                    "max_kw": _series(draw, periods, 0.0, 50.0, 2),
                    "price_per_kwh": _series(draw, periods, 0.02, 0.2, 4),
                }
                for _ in range(draw(st.integers(1, 3)))
            ]
        peers.append(peer)

    peer_ids = [p["id"] for p in peers]

    # ---- communities ---------------------------------------------------------------------
    n_communities = draw(st.integers(0, min(3, n_peers)))
    community_ids = [f"C{k + 1}" for k in range(n_communities)]
    members: dict[str, list[str]] = {cid: [] for cid in community_ids}
    for pid in peer_ids:
        choice = draw(st.sampled_from([None, *community_ids]))
        if choice is not None:
            members[choice].append(pid)
    communities: list[dict[str, Any]] = []
    for cid in community_ids:
        if not members[cid]:
            continue
        community: dict[str, Any] = {"id": cid, "members": members[cid]}
        if draw(st.booleans()):
            community["intra_fee"] = _num(draw, 0.0, 0.01, 4)
        export = draw(st.sampled_from(["absent", "null", "value"]))
        if export == "null":
            community["export_fee"] = None
        elif export == "value":
            community["export_fee"] = _num(draw, 0.0, 0.03, 4)
        communities.append(community)
    listed = [c["id"] for c in communities]
    ordered_pairs = [(a, b) for a in listed for b in listed if a != b]
    chosen_pairs = (
        draw(st.lists(st.sampled_from(ordered_pairs), max_size=3, unique=True))
        if ordered_pairs
        else []
    )
    community_fees = [
        {"from": a, "to": b, "fee": _num(draw, 0.0, 0.03, 4)} for a, b in chosen_pairs
    ]

    # ---- links and fees ------------------------------------------------------------------
    links: list[list[str]] | None = None
    if draw(st.integers(0, 3)) == 0:
        others = [(a, b) for a in peer_ids[1:] for b in peer_ids if a != b]
        extra = draw(st.lists(st.sampled_from(others), unique=True)) if others else []
        links = [["grid", pid] for pid in peer_ids[1:]] + [[a, b] for a, b in extra]
    uniform_fee = _num(draw, 0.0, 0.03, 4) if draw(st.integers(0, 3)) == 0 else None

    return {
        "name": "hypothesis-scenario",
        "periods": periods,
        "period_hours": period_hours,
        "design": draw(st.sampled_from(["p2p", "community", "hybrid"])),
        "objective": draw(st.sampled_from(["system-cost", "paper"])),
        "uniform_fee": uniform_fee,
        "communities": communities,
        "community_fees": community_fees,
        "links": links,
        "peers": peers,
    }
