"""Speed-up of a sweep on a 2-worker local Dask cluster over the same sweep in one process.

python benchmarks/sweep_speedup.py [--households 50] [--hours 48] [--workers 2] [--seed 1]
                                   [--window 24 --lookahead 24]

60 variants: pv_share (5 values) x battery_share (4) x design (3) on a generated community
(`p2pmarket.generate.community`, extra `year`); each variant generates its scenario and
clears, settles and scores it with one HiGHS thread. Prints the wall time of the serial run
(in this process, after a warm-up), of the cluster run with and without starting the
cluster, the speed-up, and checks that both tables agree (run times aside). The issue's
target is a speed-up of at least 1.8 on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd

from p2pmarket.app.sweep import Generator, plan_sweep, run_sweep
from p2pmarket.core.solve import SolverOptions
from p2pmarket.runners import InProcess
from p2pmarket.runners.dask import dask_runner

GRID = {
    "pv_share": [0.2, 0.4, 0.6, 0.8, 1.0],
    "battery_share": [0.0, 0.25, 0.5, 1.0],
    "design": ["p2p", "community", "hybrid"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=50)
    parser.add_argument("--hours", type=int, default=48)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--window", type=int, default=None, help="rolling windows (periods)")
    parser.add_argument("--lookahead", type=int, default=None)
    args = parser.parse_args()
    options = SolverOptions(window=args.window, lookahead=args.lookahead)
    base = Generator.parse(
        f"community:households={args.households},hours={args.hours},seed={args.seed}"
    )
    plan = plan_sweep(base, GRID, options=options)
    print(
        f"{len(plan)} variants of a {args.households}-household community over {args.hours} h "
        f"on a machine with {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}"
    )

    warm = plan_sweep(
        base, {"pv_share": [0.5], "battery_share": [0.5], "design": ["p2p"]}, options=options
    )
    run_sweep(warm, runner=InProcess())  # imports, HiGHS, the weather file: not timed

    start = time.perf_counter()
    serial = run_sweep(plan, runner=InProcess())
    serial_s = time.perf_counter() - start
    print(f"serial (1 process):           {serial_s:8.1f} s")

    start = time.perf_counter()
    with dask_runner(workers=args.workers) as runner:
        started = time.perf_counter()
        parallel = run_sweep(plan, runner=runner)
        finished = time.perf_counter()
    total_s, work_s = time.perf_counter() - start, finished - started
    print(f"{args.workers} workers, with cluster start: {total_s:8.1f} s")
    print(f"{args.workers} workers, sweep alone:        {work_s:8.1f} s")
    with_start, without = serial_s / total_s, serial_s / work_s
    print(f"speed-up: {with_start:.2f} with the cluster's start, {without:.2f} without")

    failed = int((serial["status"] != "ok").sum())
    pd.testing.assert_frame_equal(
        serial.drop(columns="run_time_s"), parallel.drop(columns="run_time_s")
    )
    print(f"tables agree ({failed} failed variants); mean run time per variant: "
          f"serial {serial['run_time_s'].mean():.2f} s, on the cluster "
          f"{parallel['run_time_s'].mean():.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
