"""Benchmark suite: p2pmarket against the same market written as a plain Pyomo model.

    python benchmarks/run.py                 # the full ladder (tens of minutes)
    python benchmarks/run.py --quick         # small sizes, about two minutes

Random p2p, community and hybrid markets (`random_market.py`: a grid and a mix of consumers,
prosumers and producers in communities) over 24 periods, with and without storage, at growing
sizes. Each case (one market, one tool) runs in a fresh process (`case.py`) with a timeout and
a memory limit, so that its peak memory is its own; a design's ladder stops at the first size
whose case takes longer than `--budget` seconds, times out or runs out of memory. Up to
`--pyomo-max` peers the same market is also cleared by the Pyomo model (`pyomo_model.py`)
with the same HiGHS, the objectives are checked to agree (1e-6 relative) and the ratio of
the end-to-end times is printed.

    python benchmarks/run.py --cases issue15                          # issue 15's markets
    python benchmarks/run.py --cases issue15 --only hybrid-1000,p2p-20 # some of them
    python benchmarks/run.py --cases issue15 --list                   # list them, run nothing

`--cases NAME` runs a named set of markets (`CASE_SETS`) instead of the ladder, each in its
own process, every one of them whatever the others took. After every case, and in the
tables, the ratio previous / now of its time and memory is printed where `previous.json`
(the previous release's numbers; `--previous FILE` for another) has the same market:
"≥" where the previous number is a lower bound, "n/a" where there is none.

Writes, to `--out` (default `benchmarks/results/`), after every case: `cases.csv` (one row
per market and tool), `pairs.csv` (one row per market cleared by both), `results.json` (both,
with the machine, versions and arguments) and `table.txt` (the printed tables).
See benchmarks/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))

from case import Case

HERE = Path(__file__).resolve().parent
RTOL = 1e-6
FULL_SIZES = (10, 20, 50, 100, 200, 400, 1000, 2000, 5000, 10000)
QUICK_SIZES = (20, 100)
DESIGNS = ("p2p", "community", "hybrid")
PREVIOUS_FILE = HERE / "previous.json"
SET_TIMEOUT_S = 1200.0
"""A case set's default timeout: twice the 600 s that the previous release's slowest case
(p2p, 20,000 peers) was stopped at, so that a faster clearing is measured, not cut off."""
SET_MEMORY_LIMIT_GB = 16.0
"""A case set's default memory limit: the one the previous release's 2,000-peer hybrid
market was killed at."""


@dataclass(frozen=True)
class Market:
    """One named market of a case set (a random market of `random_market.py`)."""

    name: str
    design: str
    peers: int
    periods: int = 24
    storage: bool = False  # batteries for `--storage-share` of producers and prosumers
    pyomo: bool = False  # also cleared by the Pyomo model


CASE_SETS: dict[str, tuple[Market, ...]] = {
    # Issue 15, item 5: the markets whose numbers the previous release recorded
    # (previous.json). The 8,760-period market is one LP over the whole horizon as
    # `p2pmarket.clear` clears it with its default options (no rolling window).
    "issue15": (
        Market("hybrid-1000", "hybrid", 1000),
        Market("hybrid-2000", "hybrid", 2000),
        Market("p2p-10000-storage", "p2p", 10000, storage=True),
        Market("p2p-20000-storage", "p2p", 20000, storage=True),
        Market("community-10000-storage", "community", 10000, storage=True),
        Market("p2p-100-8760-storage", "p2p", 100, periods=8760, storage=True),
        *(
            Market(f"{d}-20{'-storage' if s else ''}", d, 20, storage=s, pyomo=True)
            for d in DESIGNS
            for s in (False, True)
        ),
        # The targets at 10,000 peers that the previous release recorded no number
        # for (no ratio is printed): hybrid within 60 s, every design under 4 GB.
        Market("hybrid-10000", "hybrid", 10000),
        Market("hybrid-10000-storage", "hybrid", 10000, storage=True),
    ),
}

CASE_COLUMNS = (
    "case",
    "design",
    "storage",
    "peers",
    "periods",
    "communities",
    "tool",
    "model",
    "status",
    "n_variables",
    "n_constraints",
    "build_s",
    "handover_s",
    "highs_s",
    "extract_s",
    "total_s",
    "outside_share",
    "peak_mb",
    "bytes_per_variable",
    "objective_value",
    "solve_call_s",
    "peak_self_mb",
    "peak_worker_mb",
    "peak_tree_mb",
    "rss_before_mb",
    "process_s",
    "previous_s",
    "time_ratio",
    "previous_peak_gb",
    "memory_ratio",
    "previous_release",
    "time_ratio_low",
    "time_ratio_high",
    "memory_ratio_low",
    "memory_ratio_high",
)
PAIR_COLUMNS = (
    "case",
    "design",
    "storage",
    "peers",
    "periods",
    "p2pmarket_total_s",
    "pyomo_total_s",
    "ratio",
    "pyomo_build_s",
    "pyomo_handover_s",
    "pyomo_highs_s",
    "p2pmarket_highs_s",
    "relative_gap",
    "agree",
    "previous_ratio",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark p2pmarket against a plain Pyomo model of the same market.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, ~2 minutes")
    parser.add_argument(
        "--cases",
        choices=sorted(CASE_SETS),
        help="run this named set of markets instead of the ladder",
    )
    parser.add_argument("--only", help="with --cases: these of its markets, comma-separated")
    parser.add_argument("--list", action="store_true", help="list the cases; run nothing")
    parser.add_argument(
        "--previous",
        type=Path,
        default=PREVIOUS_FILE,
        help="the previous release's numbers [benchmarks/previous.json]",
    )
    parser.add_argument("--sizes", help="peers per market, comma-separated")
    parser.add_argument("--designs", help="comma-separated [p2p,community,hybrid]")
    parser.add_argument("--storage", choices=["no", "yes", "both"], help="[both]")
    parser.add_argument("--storage-share", type=float, default=0.3, help="of non-consumers")
    parser.add_argument("--periods", type=int, help="per market [24]")
    parser.add_argument(
        "--communities", default="auto", help="number, or auto: max(5, peers // 200)"
    )
    parser.add_argument("--objective", default="system-cost", choices=["system-cost", "paper"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pyomo-max", type=int, help="largest market also built in Pyomo")
    parser.add_argument("--pyomo-solver", default="appsi_highs", choices=["appsi_highs", "highs"])
    parser.add_argument(
        "--pyomo-links",
        default="tradable",
        choices=["tradable", "all"],
        help="Pyomo trade variables on links that can carry energy (as p2pmarket) or all pairs",
    )
    parser.add_argument("--budget", type=float, help="s; a slower case ends its design's ladder")
    parser.add_argument("--timeout", type=float, help="s; a case is killed after this")
    parser.add_argument("--memory-limit-gb", type=float, help="per case [12; with --cases 16]")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    args.markets = None
    if args.only and not args.cases:
        parser.error("--only chooses among the markets of --cases")
    if args.cases:
        given = [
            f"--{name}"
            for name in ("quick", "sizes", "designs", "storage", "periods")
            if getattr(args, name)
        ]
        if given:
            parser.error(f"--cases fixes the markets: leave out {', '.join(given)}")
        markets = CASE_SETS[args.cases]
        if args.only:
            known = {m.name: m for m in markets}
            wanted = [name.strip() for name in args.only.split(",") if name.strip()]
            unknown = [name for name in wanted if name not in known]
            if unknown:
                parser.error(
                    f"--only: no market {', '.join(unknown)} in {args.cases}; "
                    f"it has {', '.join(known)}"
                )
            markets = tuple(m for m in markets if m.name in wanted)
        args.markets = markets
        args.sizes = tuple(sorted({m.peers for m in markets}))
        if args.timeout is None:
            args.timeout = SET_TIMEOUT_S
        if args.memory_limit_gb is None:
            args.memory_limit_gb = SET_MEMORY_LIMIT_GB
    if args.memory_limit_gb is None:
        args.memory_limit_gb = 12.0
    args.designs = args.designs or ",".join(DESIGNS)
    args.storage = args.storage or "both"
    args.periods = args.periods or 24
    if args.markets is None:  # the ladder
        if args.sizes:
            args.sizes = tuple(int(s) for s in args.sizes.split(","))
        else:
            args.sizes = QUICK_SIZES if args.quick else FULL_SIZES
    if args.pyomo_max is None:
        args.pyomo_max = 100 if args.quick else 400
    if args.budget is None:
        args.budget = 20.0 if args.quick else 120.0
    if args.timeout is None:
        args.timeout = 60.0 if args.quick else 2.5 * args.budget
    args.designs = tuple(args.designs.split(","))
    return args


def communities_for(peers: int, setting: str) -> int:
    return max(5, peers // 200) if setting == "auto" else int(setting)


# --- running one case in its own process ----------------------------------------------------


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it (Linux /proc)."""
    found, queue = [], [pid]
    while queue:
        p = queue.pop()
        found.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                queue.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return found


def _rss_of_tree(pid: int) -> int:
    total = 0
    for p in _descendants(pid):
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
    return total


def run_in_subprocess(case: Case, timeout_s: float, memory_limit_gb: float) -> dict[str, Any]:
    """Run `case.py` for one case; kill it (and only it) on timeout or memory limit."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "record.json"
        log = Path(tmp) / "log.txt"
        start = time.perf_counter()
        with log.open("w") as sink:
            child = subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "case.py"),
                    json.dumps(dataclasses.asdict(case)),
                    str(out),
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as one
            )
            status = None
            max_rss = 0
            while child.poll() is None:
                max_rss = max(max_rss, _rss_of_tree(child.pid))
                elapsed = time.perf_counter() - start
                if elapsed > timeout_s:
                    status = f"timeout ({timeout_s:.0f} s)"
                elif max_rss > memory_limit_gb * 2**30:
                    status = f"memory (> {memory_limit_gb:g} GB)"
                if status:
                    os.killpg(child.pid, signal.SIGKILL)
                    child.wait()
                    break
                time.sleep(0.2)
        wall = time.perf_counter() - start
        if status is None and child.returncode == 0 and out.exists():
            record: dict[str, Any] = json.loads(out.read_text())
            tree = max(max_rss / 2**20 - record["rss_before_mb"], 0.0)
            record["peak_tree_mb"] = tree
            record["peak_mb"] = max(record["peak_self_mb"], tree)
            n = record["n_variables"]
            record["bytes_per_variable"] = record["peak_mb"] * 2**20 / n if n else None
        else:
            tail = log.read_text().strip().splitlines()[-1:] if log.exists() else []
            reason = status or f"failed: {tail[0] if tail else child.returncode}"
            record = {"status": reason, "peak_mb": max_rss / 2**20}
        record["process_s"] = wall
        return record


def market_name(design: str, peers: int, periods: int, storage: bool) -> str:
    """`hybrid-1000`, `p2p-100-8760-storage`: the names `--only` and the tables use."""
    hours = f"-{periods}" if periods != 24 else ""
    return f"{design}-{peers}{hours}{'-storage' if storage else ''}"


def _measure(case: Case, record: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "case": market_name(case.design, case.peers, case.periods, case.storage),
        "design": case.design,
        "storage": "yes" if case.storage else "no",
        "peers": case.peers,
        "periods": case.periods,
        "communities": case.communities,
        "tool": case.tool,
    }
    row.update(record)
    if "total_s" in record:
        row["handover_s"] = record["solve_call_s"] - record["highs_s"]
        # Of the elapsed time, which also counts what no step does (cutting the horizon
        # into periods, merging them); of the steps' own times where they are longer
        # (summed over periods solved in parallel processes).
        steps = record["build_s"] + record["solve_call_s"] + record["extract_s"]
        spent = max(steps, record["total_s"])
        row["outside_share"] = 1 - record["highs_s"] / spent if spent else None
    return row


# --- the ladder -----------------------------------------------------------------------------


def cases(args: argparse.Namespace) -> Iterator[tuple[Case, Case | None]]:
    """(p2pmarket case, Pyomo case or None) per design, storage setting and size -- or per
    market of the case set `--cases`."""
    if args.markets is not None:
        for m in args.markets:
            case = Case(
                tool="p2pmarket",
                design=m.design,
                peers=m.peers,
                periods=m.periods,
                communities=communities_for(m.peers, args.communities),
                storage_share=args.storage_share if m.storage else 0.0,
                seed=args.seed,
                objective=args.objective,
                pyomo_solver=args.pyomo_solver,
                pyomo_links=args.pyomo_links,
            )
            yield case, dataclasses.replace(case, tool="pyomo") if m.pyomo else None
        return
    shares = {"no": (0.0,), "yes": (args.storage_share,), "both": (0.0, args.storage_share)}
    for design in args.designs:
        for share in shares[args.storage]:
            for peers in args.sizes:
                case = Case(
                    tool="p2pmarket",
                    design=design,
                    peers=peers,
                    periods=args.periods,
                    communities=communities_for(peers, args.communities),
                    storage_share=share,
                    seed=args.seed,
                    objective=args.objective,
                    pyomo_solver=args.pyomo_solver,
                    pyomo_links=args.pyomo_links,
                )
                pyomo = dataclasses.replace(case, tool="pyomo")
                yield case, pyomo if peers <= args.pyomo_max else None


def _over(row: dict[str, Any], budget: float) -> bool:
    return row.get("status") != "optimal" or float(row.get("total_s", 0.0)) > budget


def pair_row(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    a, b = float(ours["objective_value"]), float(theirs["objective_value"])
    gap = abs(a - b) / max(abs(a), abs(b), 1e-9)
    return {
        "case": ours["case"],
        "design": ours["design"],
        "storage": ours["storage"],
        "peers": ours["peers"],
        "periods": ours["periods"],
        "p2pmarket_total_s": ours["total_s"],
        "pyomo_total_s": theirs["total_s"],
        "ratio": theirs["total_s"] / ours["total_s"],
        "pyomo_build_s": theirs["build_s"],
        "pyomo_handover_s": theirs["handover_s"],
        "pyomo_highs_s": theirs["highs_s"],
        "p2pmarket_highs_s": ours["highs_s"],
        "relative_gap": gap,
        "agree": gap <= RTOL,
    }


# --- the previous release's numbers ---------------------------------------------------------
#
# previous.json holds, per market and tool, the time (`time_s`) and the peak memory (`peak_gb`)
# the previous release took, each as {"kind": "exact", "value": v}, {"kind": "lower bound",
# "value": v} (the case did not finish) or {"kind": "range", "low": a, "high": b} (only a
# range over several markets is known), or null (not measured). A run's case gets the ratio
# previous / now of both when its market (tool, design, peers, periods, communities, storage
# share, objective) is one of them.


def _market_key(
    tool: str,
    design: str,
    peers: int,
    periods: int,
    communities: int,
    storage_share: float,
    objective: str,
) -> tuple[Any, ...]:
    return (
        tool,
        design,
        int(peers),
        int(periods),
        int(communities),
        round(storage_share, 6),
        objective,
    )


class Previous:
    """The previous release's numbers (`previous.json`), looked up by market."""

    def __init__(self, path: Path) -> None:
        document = json.loads(path.read_text()) if path.exists() else {}
        self.path = path
        self.release: str = document.get("release", "")
        self.entries = {
            _market_key(
                e["tool"],
                e["design"],
                e["peers"],
                e["periods"],
                e["communities"],
                e["storage_share"],
                e["objective"],
            ): e
            for e in document.get("entries", [])
        }
        self.pairs = {p["case"]: p for p in document.get("pairs", [])}

    def entry(self, case: Case) -> dict[str, Any] | None:
        return self.entries.get(
            _market_key(
                case.tool,
                case.design,
                case.peers,
                case.periods,
                case.communities,
                case.storage_share,
                case.objective,
            )
        )

    def pair(self, case: Case) -> dict[str, Any] | None:
        """The previous Pyomo / p2pmarket ratio of this market, if its p2pmarket case has a
        previous entry (so that the market is the same) and one was recorded."""
        entry = self.entry(dataclasses.replace(case, tool="p2pmarket"))
        return self.pairs.get(entry["case"]) if entry else None


def _x(r: float) -> str:
    return f"{r:.0f}x" if r >= 100 else f"{r:.1f}x" if r >= 10 else f"{r:.2f}x"


def _number_text(number: dict[str, Any] | None) -> str:
    """A previous number as the table prints it: `343`, `≥ 600`, `0.2–0.56`, or empty."""
    if number is None:
        return ""
    if number["kind"] == "range":
        return f"{number['low']:g}–{number['high']:g}"
    prefix = "≥ " if number["kind"] == "lower bound" else ""
    return f"{prefix}{number['value']:g}"


def ratio(previous: dict[str, Any] | None, now: dict[str, Any] | None) -> dict[str, Any]:
    """previous / now (above 1: now faster or leaner) as {"text", "kind", "low", "high"}.

    `kind`: "exact"; "at least" (the previous number is a lower bound: "≥"); "at most" (this
    run's case was killed, so its number is a lower bound: "≤"); "range" (only a range of
    previous numbers is known: low–high); "n/a" (no previous number, no number now, or both
    are lower bounds)."""
    na = {"text": "n/a", "kind": "n/a", "low": None, "high": None}
    if previous is None or now is None or not now["value"] or now["value"] <= 0:
        return na
    value = now["value"]
    low = previous.get("low", previous.get("value")) / value
    high = previous.get("high", previous.get("value")) / value
    finished = now["kind"] == "exact"
    kind = previous["kind"]
    if kind == "exact" and finished:
        return {"text": _x(low), "kind": "exact", "low": low, "high": low}
    if kind == "lower bound" and finished:
        return {"text": f"≥ {_x(low)}", "kind": "at least", "low": low, "high": None}
    if kind == "range" and finished:
        return {"text": f"{_x(low)}–{_x(high)}", "kind": "range", "low": low, "high": high}
    if kind in ("exact", "range"):  # killed now: its time or memory is at least `value`
        return {"text": f"≤ {_x(high)}", "kind": "at most", "low": None, "high": high}
    return dict(na, text="n/a (both bounds)")


def _now(row: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """This run's time (s) and peak memory (GB) of a case, exact, or lower bounds when it
    was killed (the process's life and its last sampled memory; absolute, not differences)."""
    status = str(row.get("status"))
    if status == "optimal" and "total_s" in row:
        return (
            {"kind": "exact", "value": row["total_s"]},
            {"kind": "exact", "value": row["peak_mb"] / 1024},
        )
    if status.startswith(("timeout", "memory")):
        return (
            {"kind": "lower bound", "value": row["process_s"]},
            {"kind": "lower bound", "value": row["peak_mb"] / 1024},
        )
    return None, None


def compare(row: dict[str, Any], entry: dict[str, Any] | None, release: str) -> None:
    """Add the previous release's numbers and the ratios previous / now to a case's row."""
    time_now, memory_now = _now(row)
    previous_time = entry.get("time_s") if entry else None
    previous_memory = entry.get("peak_gb") if entry else None
    times = ratio(previous_time, time_now)
    memory = ratio(previous_memory, memory_now)
    row["previous_s"] = _number_text(previous_time)
    row["previous_peak_gb"] = _number_text(previous_memory)
    row["time_ratio"] = times["text"]
    row["memory_ratio"] = memory["text"]
    row["previous_release"] = (entry.get("release") or release) if entry else ""
    for name, r in (("time_ratio", times), ("memory_ratio", memory)):
        row[f"{name}_low"], row[f"{name}_high"] = r["low"], r["high"]  # None: unbounded
    row["previous"] = {"entry": entry, "time_ratio": times, "memory_ratio": memory}


def run(
    args: argparse.Namespace, console: Console, previous: Previous
) -> tuple[list[dict[str, Any]], list[Any]]:
    rows: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    commit = _commit()  # the code measured; src/ may change while a long run goes on
    stopped: set[tuple[str, str, str]] = set()
    for case, pyomo in cases(args):
        ours = None
        for c in (case, pyomo):
            if c is None:
                continue
            key = (c.tool, c.design, str(c.storage))
            if key in stopped:
                continue
            label = f"{c.tool:<9} {c.design:<9} storage {'yes' if c.storage else 'no ':<3}"
            console.print(f"[dim]{label} {c.peers:>6} peers ...[/dim]", end=" ")
            row = _measure(c, run_in_subprocess(c, args.timeout, args.memory_limit_gb))
            entry = previous.entry(c)
            compare(row, entry, previous.release)
            rows.append(row)
            then = (
                f"previous {row['previous_s'] or '-'} s, {row['previous_peak_gb'] or '-'} GB; "
                if entry
                else ""
            )
            console.print(
                f"[dim]{row['status']}, {row.get('total_s', row['process_s']):.2f} s, "
                f"{row.get('peak_mb', 0):.0f} MB[/dim]; {then}previous/now: "
                f"time {row['time_ratio']}, memory {row['memory_ratio']}"
            )
            if args.markets is None and _over(row, args.budget):
                stopped.add(key)  # a case set runs every market, whatever the others took
            if c.tool == "p2pmarket":
                ours = row if row.get("status") == "optimal" else None
            elif ours is not None and row.get("status") == "optimal":
                pair = pair_row(ours, row)
                then_pair = previous.pair(c)
                number = then_pair.get("pyomo_over_p2pmarket") if then_pair else None
                pair["previous_ratio"] = f"{_number_text(number)}x" if number else "n/a"
                pairs.append(pair)
            write_outputs(args, rows, pairs, commit)
    return rows, pairs


# --- output ---------------------------------------------------------------------------------


def _fmt(value: Any, kind: str = "") -> str:
    if value is None or value == "":
        return "-"
    if kind == "s":
        return f"{value:.2f}" if value < 100 else f"{value:.0f}"
    if kind == "%":
        return f"{100 * value:.0f} %"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "mb":
        return f"{value:,.0f}"
    return str(value)


def case_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Cases (one fresh process each; times in seconds, memory in MB)")
    for name in (
        "design",
        "storage",
        "peers",
        "periods",
        "tool",
        "model",
        "status",
        "variables",
        "constraints",
        "build",
        "hand-over",
        "HiGHS",
        "extract",
        "total",
        "outside HiGHS",
        "peak MB",
        "B/var",
    ):
        table.add_column(name, justify="left" if name in ("design", "tool", "model") else "right")
    for r in rows:
        table.add_row(
            r["design"],
            r["storage"],
            _fmt(r["peers"], "int"),
            _fmt(r.get("periods"), "int"),
            r["tool"],
            _fmt(r.get("model")),
            r["status"],
            _fmt(r.get("n_variables"), "int"),
            _fmt(r.get("n_constraints"), "int"),
            _fmt(r.get("build_s"), "s"),
            _fmt(r.get("handover_s"), "s"),
            _fmt(r.get("highs_s"), "s"),
            _fmt(r.get("extract_s"), "s"),
            _fmt(r.get("total_s"), "s"),
            _fmt(r.get("outside_share"), "%"),
            _fmt(r.get("peak_mb"), "mb"),
            _fmt(r.get("bytes_per_variable"), "mb"),
        )
    return table


def previous_table(rows: list[dict[str, Any]], release: str) -> Table:
    """Each case against the previous release: times in s, memory in GB, ratios previous / now."""
    table = Table(
        title=f"Against the previous release ({release or 'previous.json'}): "
        "ratio previous / now, above 1 = faster or leaner now"
    )
    for name in (
        "case",
        "tool",
        "status",
        "total s",
        "prev. s",
        "time ratio",
        "peak GB",
        "prev. GB",
        "memory ratio",
    ):
        table.add_column(name, justify="left" if name in ("case", "tool") else "right")
    for r in rows:
        now_s = r.get("total_s", r.get("process_s"))
        killed = "total_s" not in r
        table.add_row(
            r["case"],
            r["tool"],
            r["status"],
            ("≥ " if killed else "") + _fmt(now_s, "s"),
            _fmt(r.get("previous_s")),
            r.get("time_ratio", "n/a"),
            ("≥ " if killed else "") + f"{r.get('peak_mb', 0) / 1024:.3g}",
            _fmt(r.get("previous_peak_gb")),
            r.get("memory_ratio", "n/a"),
        )
    return table


def pair_table(pairs: list[dict[str, Any]]) -> Table:
    table = Table(title="Pyomo / p2pmarket, end to end, same market and same HiGHS")
    for name in (
        "design",
        "storage",
        "peers",
        "p2pmarket",
        "Pyomo",
        "ratio",
        "Pyomo build",
        "Pyomo hand-over",
        "Pyomo HiGHS",
        "p2pmarket HiGHS",
        "objective gap",
        "agree",
        "ratio prev.",
    ):
        table.add_column(name, justify="left" if name == "design" else "right")
    for p in pairs:
        table.add_row(
            p["design"],
            p["storage"],
            _fmt(p["peers"], "int"),
            _fmt(p["p2pmarket_total_s"], "s"),
            _fmt(p["pyomo_total_s"], "s"),
            f"{p['ratio']:.1f}x",
            _fmt(p["pyomo_build_s"], "s"),
            _fmt(p["pyomo_handover_s"], "s"),
            _fmt(p["pyomo_highs_s"], "s"),
            _fmt(p["p2pmarket_highs_s"], "s"),
            f"{p['relative_gap']:.1e}",
            "yes" if p["agree"] else "NO",
            _fmt(p.get("previous_ratio")),
        )
    return table


def _versions() -> dict[str, str]:
    out = {}
    for name in ("p2pmarket", "linopy", "highspy", "pyomo", "numpy", "pandas", "xarray"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(HERE), "status", "--porcelain", "--", "../src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return head + (" + uncommitted changes in src/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_outputs(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    pairs: list[dict[str, Any]],
    commit: str,
) -> None:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for name, columns, data in (
        ("cases.csv", CASE_COLUMNS, rows),
        ("pairs.csv", PAIR_COLUMNS, pairs),
    ):
        with (out / name).open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(data)
    meta = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "memory_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
        },
        "versions": _versions(),
        "commit_at_start": commit,
        "commit_now": _commit(),
        "previous": {
            "file": str(args.previous),
            "release": Previous(args.previous).release,
            "ratios": "previous / now of total_s and peak memory (GB = 1024 MB): above 1 = "
            "faster or leaner now; '≥' where the previous number is a lower bound, '≤' where "
            "this run's case was killed, a range where only a range is known, 'n/a' where "
            "there is no previous number",
        },
        "memory": "peak RSS during the clearing (the case's process, or its whole process tree "
        "sampled every 0.2 s when larger) minus the process's RSS just before it",
    }
    document = {"meta": meta, "cases": rows, "pairs": pairs}
    (out / "results.json").write_text(json.dumps(document, indent=1, default=str))
    with open(os.devnull, "w") as devnull:
        text = Console(width=220, record=True, file=devnull)
        text.print(case_table(rows))
        if pairs:
            text.print(pair_table(pairs))
        text.print(previous_table(rows, Previous(args.previous).release))
    (out / "table.txt").write_text(text.export_text())


def list_cases(args: argparse.Namespace, previous: Previous, console: Console) -> None:
    """`--list`: the cases a run would start (a ladder's every size; it may stop early)."""
    table = Table(title="Cases to run, with the previous release's numbers (previous.json)")
    for name in (
        "case",
        "tool",
        "periods",
        "communities",
        "storage share",
        "prev. s",
        "prev. GB",
        "note",
    ):
        table.add_column(name, justify="left" if name in ("case", "tool", "note") else "right")
    for case, pyomo in cases(args):
        for c in (case, pyomo):
            if c is None:
                continue
            entry = previous.entry(c)
            table.add_row(
                market_name(c.design, c.peers, c.periods, c.storage),
                c.tool,
                _fmt(c.periods, "int"),
                str(c.communities),
                f"{c.storage_share:g}",
                _fmt(_number_text(entry.get("time_s")) if entry else None),
                _fmt(_number_text(entry.get("peak_gb")) if entry else None),
                (entry.get("note") or "") if entry else "no previous number",
            )
    console.print(table)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    console = Console(width=max(Console().width, 200))
    previous = Previous(args.previous)
    if args.list:
        list_cases(args, previous, console)
        return
    if args.markets is not None:
        console.print(
            f"cases {args.cases}: {', '.join(m.name for m in args.markets)}; every one runs; "
            f"timeout {args.timeout:g} s, memory {args.memory_limit_gb:g} GB"
        )
    else:
        console.print(
            f"sizes {','.join(map(str, args.sizes))}; designs {','.join(args.designs)}; "
            f"storage {args.storage}; Pyomo up to {args.pyomo_max} peers; budget "
            f"{args.budget:g} s, timeout {args.timeout:g} s, memory {args.memory_limit_gb:g} GB"
        )
    console.print(
        f"previous numbers: {args.previous} ({previous.release or 'none'}); "
        "ratios previous / now, above 1 = faster or leaner now"
    )
    start = time.perf_counter()
    rows, pairs = run(args, console, previous)
    console.print(case_table(rows))
    if pairs:
        console.print(pair_table(pairs))
    console.print(previous_table(rows, previous.release))
    disagree = [p for p in pairs if not p["agree"]]
    console.print(
        f"{len(rows)} cases, {len(pairs)} pairs ({len(disagree)} disagree) in "
        f"{time.perf_counter() - start:.0f} s; written to {args.out}"
    )
    if disagree:
        sys.exit(1)


if __name__ == "__main__":
    main()
