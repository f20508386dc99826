"""A year of hours for a generated community, stage by stage (issue 14's targets).

python benchmarks/year.py [--households 100] [--pv-share 0.6] [--battery-share 0.5]
                          [--design p2p] [--hours 8760] [--window 24] [--lookahead 24]
                          [--workers N] [--threads N] [--seed 0]

Generates the community (`p2pmarket.generate.community`; battery share 0.5 of the PV
households = 30 % of households), writes it and reads it back as a user's run does, then
times `run_market` with a rolling horizon (the market and its no-trading baseline), and the
writing of the run's files (`write_run`) into a temporary directory. Prints each stage's
wall time, the per-window cost split (building, HiGHS, extraction) and the peak memory of
this process. The end-to-end figure is what `p2pmarket run SCENARIO --window 24
--lookahead 24 --out DIR` costs after the scenario is read.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import p2pmarket
from p2pmarket.generate import community, write_community
from p2pmarket.io.results import write_run
from p2pmarket.runners import runner_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--households", type=int, default=100)
    parser.add_argument("--pv-share", type=float, default=0.6)
    parser.add_argument("--battery-share", type=float, default=0.5)
    parser.add_argument("--design", default="p2p")
    parser.add_argument("--hours", type=int, default=None)
    parser.add_argument("--window", type=int, default=24)
    parser.add_argument("--lookahead", type=int, default=24)
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    parser.add_argument("--threads", type=int, default=None, help="HiGHS threads per solve")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    # Warm up: imports and HiGHS loaded before anything is timed.
    p2pmarket.run_market(p2pmarket.cases.load("five-peer-case-1"))

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generated = community(
            args.households, args.pv_share, args.battery_share, seed=args.seed, hours=args.hours
        )
        write_community(generated, Path(tmp) / "scenario")
        t1 = time.perf_counter()
        scenario = p2pmarket.load_scenario(Path(tmp) / "scenario" / "scenario.yaml")
        t2 = time.perf_counter()
        options = p2pmarket.SolverOptions(
            window=args.window, lookahead=args.lookahead, workers=args.workers, threads=args.threads
        )
        run = p2pmarket.run_market(
            scenario, args.design, options=options, runner=runner_for(args.workers)
        )
        t3 = time.perf_counter()
        write_run(run.result, Path(tmp) / "out", run.settlement, run.kpis)
        t4 = time.perf_counter()

    r = run.result
    windows = len(r.windows)
    batteries = sum(p.storage is not None for p in scenario.peers)
    print(
        f"{args.households} households ({batteries} batteries), {scenario.periods} periods, "
        f"design {args.design}, window {args.window} + look-ahead {args.lookahead}: "
        f"{windows} windows"
    )
    print(f"generate + write scenario   {t1 - t0:8.2f} s")
    print(f"read scenario               {t2 - t1:8.2f} s")
    print(f"run_market (market+baseline){t3 - t2:8.2f} s")
    t = r.timings
    print(
        f"  market windows: build {t.build_seconds:.2f} s, solve {t.solve_seconds:.2f} s "
        f"(HiGHS {t.solver_seconds:.2f} s), extract {t.extract_seconds:.2f} s, "
        f"wall {t.wall_seconds or 0:.2f} s; per window "
        f"{1000 * (t.wall_seconds or 0) / max(windows, 1):.0f} ms"
    )
    print(f"write run files             {t4 - t3:8.2f} s")
    print(f"end to end after reading    {t4 - t2:8.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak memory (this process)  {peak:8.2f} GB")
    print(f"objective {r.objective:.6f} {scenario.currency}")


if __name__ == "__main__":
    main()
