"""Random markets for benchmarks: N peers in communities over T periods (deterministic seed)."""

from __future__ import annotations

from typing import Any

import numpy as np


def random_market(
    peers: int,
    periods: int = 24,
    communities: int = 5,
    storage_share: float = 0.0,
    design: str = "p2p",
    seed: int = 0,
) -> dict[str, Any]:
    """A feasible scenario dict: a grid, then a mix of consumers, prosumers and producers."""
    rng = np.random.default_rng(seed)
    hours = np.arange(periods)
    daily = 0.6 + 0.4 * np.sin(np.pi * (hours % 24 - 6) / 24).clip(0)
    solar = np.sin(np.pi * (hours % 24 - 6) / 12).clip(0)
    grid = {
        "id": "grid",
        "role": "grid",
        "generation": {"min_kw": 0.0, "max_kw": 1e6, "offer_per_kwh": 0.12},
        "export_fee": 0.015,
        "buy_price_per_kwh": 0.03,
    }
    rows: list[dict[str, Any]] = [grid]
    members: list[list[str]] = [[] for _ in range(communities)]
    for i in range(1, peers):
        pid = f"P{i}"
        role = rng.choice(["consumer", "prosumer", "producer"], p=[0.5, 0.35, 0.15])
        peer: dict[str, Any] = {"id": pid, "role": str(role)}
        if role != "producer":
            peer["load_kw"] = np.round(rng.uniform(2, 12) * daily, 3).tolist()
        if role != "consumer":
            size = rng.uniform(3, 20)
            profile = solar if rng.random() < 0.7 else np.ones(periods)
            peer["generation"] = {
                "min_kw": 0.0,
                "max_kw": np.round(size * profile, 3).tolist(),
                "offer_per_kwh": round(float(rng.uniform(0.02, 0.09)), 4),
            }
            peer["export_fee"] = round(float(rng.uniform(0.0, 0.02)), 4)
            if rng.random() < storage_share:
                peer["storage"] = {
                    "capacity_kwh": round(float(rng.uniform(5, 20)), 2),
                    "power_kw": round(float(rng.uniform(2, 6)), 2),
                    "charge_efficiency": 0.95,
                    "discharge_efficiency": 0.95,
                }
        rows.append(peer)
        members[int(rng.integers(communities))].append(pid)
    return {
        "name": f"random-{peers}",
        "periods": periods,
        "design": design,
        "communities": [
            {"id": f"C{c + 1}", "members": m, "intra_fee": 0.001}
            for c, m in enumerate(members)
            if m
        ],
        "peers": rows,
    }
