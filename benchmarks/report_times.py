"""Time the HTML report of random markets, step by step, and print the figures' sizes.

python benchmarks/report_times.py [PEERS ...]      # default: 17 300 1000

The target (issue 11): the whole report of a 1,000-peer market in at most 30 s, every figure
within 2,400 x 2,400 px. Clearing the market is timed apart; it is not part of the report.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from random_market import random_market

import p2pmarket
from p2pmarket.reports import figure_png, standard_figures, write_report


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def time_report(n: int) -> None:
    scenario = p2pmarket.Scenario.from_dict(
        random_market(n, periods=24, communities=max(5, n // 50), storage_share=0.3)
    )
    start = time.perf_counter()
    market = p2pmarket.run_market(scenario)
    print(f"{n} peers x 24 periods: cleared and settled in {time.perf_counter() - start:.1f} s")

    steps: list[tuple[str, float]] = []

    def step(what: str) -> None:
        steps.append((what, time.perf_counter()))

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        path = write_report(
            market.result,
            Path(out),
            bills=market.settlement.bills,
            kpis=market.kpis.to_dict(),
            on_step=step,
        )
        total = time.perf_counter() - start
        size_mb = path.stat().st_size / 1e6
    ends = [t for _, t in steps[1:]] + [start + total]
    for (what, began), ended in zip(steps, ends, strict=True):
        print(f"  {what:<40} {ended - began:6.2f} s")
    print(f"  report total {total:.1f} s, {size_mb:.1f} MB")
    figures = standard_figures(market.result, bills=market.settlement.bills)
    for name, figure in figures.items():
        width, height = png_size(figure_png(figure))
        print(f"  {name:<40} {width:>5} x {height:<5} px")


def main() -> None:
    for n in [int(a) for a in sys.argv[1:]] or [17, 300, 1000]:
        time_report(n)


if __name__ == "__main__":
    main()
