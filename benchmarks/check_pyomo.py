"""Check that the Pyomo baseline clears the same markets as `p2pmarket.clear`.

    python benchmarks/check_pyomo.py [--solver appsi_highs|highs]

Every built-in case and a set of random markets (communities, storage, flexible demand,
contracts, a uniform fee, restricted links), under both objectives and the three designs:
the two objectives must agree to 1e-6 relative, and the balance duals of the peers (prices)
are compared too (the share that agree is reported, not required: duals need not be unique).
Exits non-zero on any disagreement.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from pyomo_model import clear_with_pyomo
from random_market import random_market

import p2pmarket

DESIGNS = ("p2p", "community", "hybrid")
OBJECTIVES = ("system-cost", "paper")
RTOL = 1e-6


def relative_gap(a: float, b: float) -> float:
    """|a - b| relative to the larger magnitude (absolute below 1e-9)."""
    scale = max(abs(a), abs(b))
    return abs(a - b) / scale if scale > 1e-9 else abs(a - b)


def _variants() -> Iterator[tuple[str, p2pmarket.Scenario]]:
    """Built-in cases, then random markets with each optional feature switched on."""
    for name in p2pmarket.cases.names():
        yield name, p2pmarket.cases.load(name)
    for peers, periods, storage, seed in ((12, 4, 0.0, 1), (25, 6, 0.5, 2), (40, 24, 0.3, 3)):
        data = random_market(peers, periods, communities=4, storage_share=storage, seed=seed)
        yield f"random-{peers}x{periods} storage {storage}", p2pmarket.Scenario.from_dict(data)
    data = random_market(15, 3, communities=3, storage_share=0.4, seed=4)
    ids = [c["id"] for c in data["communities"]]
    data["community_fees"] = [
        {"from": ids[0], "to": ids[1], "fee": 0.002},
        {"from": ids[1], "to": ids[0], "fee": [0.03, 0.0, 0.01]},
    ]
    data["communities"][0]["export_fee"] = 0.004
    data["peers"][3]["flexible_load"] = [{"max_kw": 3.0, "price_per_kwh": 0.15}]
    data["peers"][5]["flexible_load"] = [{"max_kw": [1.0, 2.0, 0.5], "price_per_kwh": 0.05}]
    yield "random-15 contracts, flexible demand", p2pmarket.Scenario.from_dict(data)
    uniform = dict(data, uniform_fee=0.011)
    yield "random-15 uniform fee", p2pmarket.Scenario.from_dict(uniform)
    ids = [p["id"] for p in data["peers"]]
    links = [[a, b] for i, a in enumerate(ids) for b in ids[i + 1 :: 5]]
    from_grid = [["grid", b] for b in ids[1:]]  # every peer can still buy from the grid
    restricted = dict(data, links=[*links, *[[b, a] for a, b in links[::3]], *from_grid])
    yield "random-15 restricted links", p2pmarket.Scenario.from_dict(restricted)
    lonely = random_market(10, 2, communities=2, seed=5)
    lonely["communities"] = [  # P1 alone in a listed community; P6 and up in none
        {"id": "solo", "members": [lonely["peers"][1]["id"]], "export_fee": 0.0},
        {"id": "pair", "members": [p["id"] for p in lonely["peers"][2:6]]},
    ]
    yield "random-10 peers in no community", p2pmarket.Scenario.from_dict(lonely)


def _same_prices(ours: pd.DataFrame, theirs: pd.DataFrame) -> float:
    """Share of (peer, period) whose balance-dual price agrees to 1e-6 $/kWh.

    Informative only: a degenerate LP has many optimal duals, and either solve may return
    any of them.
    """
    peers = ours[ours["kind"] == "peer"].rename(columns={"node": "peer"})
    both = peers.merge(theirs, on=["period", "peer"], suffixes=("", "_pyomo"))
    close = (both["price_per_kwh"] - both["price_per_kwh_pyomo"]).abs() <= 1e-6
    return float(close.mean()) if len(both) else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solver", default="appsi_highs", choices=["appsi_highs", "highs"])
    args = parser.parse_args()
    failures = 0
    rows: list[tuple[Any, ...]] = []
    for label, scenario in _variants():
        for design in DESIGNS:
            for objective in OBJECTIVES:
                ours = p2pmarket.clear(scenario, design=design, objective=objective)
                theirs = clear_with_pyomo(scenario, design, objective, solver=args.solver)
                gap = relative_gap(ours.objective, theirs.objective)
                ok = gap <= RTOL and "optimal" in theirs.termination
                failures += not ok
                same = _same_prices(ours.prices, theirs.prices)
                row = (label, design, objective, ours.objective, theirs.objective, gap, same, ok)
                rows.append(row)
    print(
        f"     {'market':<38} {'design':<9} {'objective':<11} {'p2pmarket':>14} {'pyomo':>14}"
        f" {'rel.gap':>8} {'same prices':>11}"
    )
    for label, design, objective, a, b, gap, same, ok in rows:
        flag = "ok  " if ok else "FAIL"
        print(
            f"{flag} {label:<38} {design:<9} {objective:<11} {a:>14.6f} {b:>14.6f} {gap:8.1e}"
            f" {same:>11.0%}"
        )
    print(f"{len(rows) - failures} agree, {failures} disagree (relative tolerance {RTOL:g})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
