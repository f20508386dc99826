"""Time `clear()` on the 5-peer case and on random markets; prints build and solve seconds.

python benchmarks/clear_times.py [PEERS ...]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from random_market import random_market

import p2pmarket


def report(label: str, scenario: p2pmarket.Scenario, design: str | None = None) -> None:
    start = time.perf_counter()
    result = p2pmarket.clear(scenario, design=design)
    total = time.perf_counter() - start
    t = result.timings
    print(
        f"{label:<34} {result.design:<9} vars {result.n_variables:>8} cons "
        f"{result.n_constraints:>7}  build {t.build_seconds:7.3f} s  solve "
        f"{t.solve_seconds:7.3f} s  total {total:7.3f} s  objective {result.objective:.6g}"
    )


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [100]
    p2pmarket.clear(p2pmarket.cases.load("five-peer-case-2"))  # warm-up: imports, HiGHS
    for name in p2pmarket.cases.names():
        report(name, p2pmarket.cases.load(name))
    for n in sizes:
        scenario = p2pmarket.Scenario.from_dict(random_market(n, periods=24))
        for design in ("p2p", "community", "hybrid"):
            report(f"random {n} peers x 24 periods", scenario, design)


if __name__ == "__main__":
    main()
