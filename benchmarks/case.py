"""One benchmark case, run in a process of its own so that its peak memory is its own.

    python benchmarks/case.py CASE_JSON OUT_JSON

`run.py` starts this once per case (market x tool). The process imports what it needs,
warms up (clears the 5-peer case once, so lazy imports and loading HiGHS are not timed),
generates the random market, then clears it once with `p2pmarket.clear` or with the Pyomo
model and writes one JSON record to OUT_JSON.

Memory: `peak_self_mb` is the process's peak resident set size
(`getrusage(RUSAGE_SELF).ru_maxrss`, which counts everything: Python objects, numpy arrays and
HiGHS's own C++ allocations) at the end of the clearing, minus its resident size
(`/proc/self/statm`, `rss_before_mb`) just before it -- what the clearing added on top of the
interpreter, the libraries and the scenario. `peak_worker_mb` is the largest peak of any
worker process the clearing started and ended (`RUSAGE_CHILDREN`; 0 when it started none).
`run.py` combines these with its own sampling of the whole process tree into `peak_mb`.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

__all__ = ["Case", "run_case"]

MODEL_ATTRIBUTES = ("model_kind", "model", "formulation", "reduction", "periods_solved")
"""Attributes a result may gain to say how it was cleared; printed when present."""


@dataclass(frozen=True)
class Case:
    """One market cleared by one tool."""

    tool: str  # "p2pmarket" or "pyomo"
    design: str
    peers: int
    periods: int
    communities: int
    storage_share: float
    seed: int
    objective: str = "system-cost"
    pyomo_solver: str = "appsi_highs"
    pyomo_links: str = "tradable"

    @property
    def storage(self) -> bool:
        return self.storage_share > 0


def _rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_bytes(who: int) -> int:
    return resource.getrusage(who).ru_maxrss * 1024  # Linux reports kilobytes


def _model_kind(result: Any) -> str:
    """How `clear()` says it built the model, if the result says so (e.g. a reduced model)."""
    parts = []
    for name in MODEL_ATTRIBUTES:
        value = getattr(result, name, None)
        if isinstance(value, str | int | float | bool) and not callable(value):
            parts.append(str(value))
    return ", ".join(parts) or "explicit"


def _clear_p2pmarket(case: Case, scenario: Any) -> dict[str, Any]:
    import p2pmarket

    start = time.perf_counter()
    result = p2pmarket.clear(scenario, design=case.design, objective=case.objective)
    wall = time.perf_counter() - start
    peak = _peak_bytes(resource.RUSAGE_SELF)
    t = result.timings
    timings = {f.name: getattr(t, f.name) for f in dataclasses.fields(t)}
    return {
        "peak_bytes": peak,
        "status": str(result.status),
        "model": _model_kind(result),
        "objective_value": float(result.objective),
        "n_variables": int(result.n_variables),
        "n_constraints": int(result.n_constraints),
        "build_s": float(t.build_seconds),
        "solve_call_s": float(t.solve_seconds),
        "highs_s": float(t.solver_seconds),
        "extract_s": float(t.extract_seconds),
        "total_s": wall,
        "timings": timings,  # every field of Timings, including any added later
    }


def _clear_pyomo(case: Case, scenario: Any) -> dict[str, Any]:
    from pyomo_model import clear_with_pyomo

    run = clear_with_pyomo(
        scenario, case.design, case.objective, case.pyomo_solver, case.pyomo_links
    )
    peak = _peak_bytes(resource.RUSAGE_SELF)
    return {
        "peak_bytes": peak,
        "status": "optimal" if "optimal" in run.termination else run.termination,
        "model": f"{case.pyomo_solver} {case.pyomo_links} links",
        "objective_value": run.objective,
        "n_variables": run.n_variables,
        "n_constraints": run.n_constraints,
        "build_s": run.build_seconds,
        "solve_call_s": run.solve_seconds,
        "highs_s": run.solver_seconds,
        "extract_s": run.extract_seconds,
        "total_s": run.build_seconds + run.solve_seconds + run.extract_seconds,
        "timings": {},
    }


def run_case(case: Case) -> dict[str, Any]:
    """Warm up, build the market, clear it once; the measurements as a flat dict."""
    from random_market import random_market

    import p2pmarket

    warm = p2pmarket.cases.load("five-peer-case-2")
    if case.tool == "pyomo":
        from pyomo_model import clear_with_pyomo

        clear_with_pyomo(warm, case.design, case.objective, case.pyomo_solver)
    else:
        p2pmarket.clear(warm, design=case.design, objective=case.objective)

    data = random_market(
        case.peers,
        case.periods,
        communities=case.communities,
        storage_share=case.storage_share,
        design=case.design,
        seed=case.seed,
    )
    scenario = p2pmarket.Scenario.from_dict(data)
    del data
    gc.collect()
    before = _rss_bytes()
    clear = _clear_pyomo if case.tool == "pyomo" else _clear_p2pmarket
    record = clear(case, scenario)
    peak = max(record.pop("peak_bytes") - before, 0)
    record["rss_before_mb"] = before / 2**20
    record["peak_self_mb"] = peak / 2**20
    record["peak_worker_mb"] = _peak_bytes(resource.RUSAGE_CHILDREN) / 2**20
    return record


def main() -> None:
    case = Case(**json.loads(sys.argv[1]))
    record = run_case(case)
    Path(sys.argv[2]).write_text(json.dumps(record))


if __name__ == "__main__":
    main()
