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

CASE_COLUMNS = (
    "design",
    "storage",
    "peers",
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
)
PAIR_COLUMNS = (
    "design",
    "storage",
    "peers",
    "p2pmarket_total_s",
    "pyomo_total_s",
    "ratio",
    "pyomo_build_s",
    "pyomo_handover_s",
    "pyomo_highs_s",
    "p2pmarket_highs_s",
    "relative_gap",
    "agree",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark p2pmarket against a plain Pyomo model of the same market.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, ~2 minutes")
    parser.add_argument("--sizes", help="peers per market, comma-separated")
    parser.add_argument("--designs", default="p2p,community,hybrid")
    parser.add_argument("--storage", choices=["no", "yes", "both"], default="both")
    parser.add_argument("--storage-share", type=float, default=0.3, help="of non-consumers")
    parser.add_argument("--periods", type=int, default=24)
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
    parser.add_argument("--memory-limit-gb", type=float, default=12.0, help="per case")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
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


def _measure(case: Case, record: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "design": case.design,
        "storage": "yes" if case.storage else "no",
        "peers": case.peers,
        "communities": case.communities,
        "tool": case.tool,
    }
    row.update(record)
    if "total_s" in record:
        row["handover_s"] = record["solve_call_s"] - record["highs_s"]
        # Of the steps' own times (summed over periods when they are solved separately, in
        # parallel processes; `total_s` is then the elapsed time, shorter than the sum).
        steps = record["build_s"] + record["solve_call_s"] + record["extract_s"]
        row["outside_share"] = 1 - record["highs_s"] / steps if steps else None
    return row


# --- the ladder -----------------------------------------------------------------------------


def cases(args: argparse.Namespace) -> Iterator[tuple[Case, Case | None]]:
    """(p2pmarket case, Pyomo case or None) per design, storage setting and size."""
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
        "design": ours["design"],
        "storage": ours["storage"],
        "peers": ours["peers"],
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


def run(args: argparse.Namespace, console: Console) -> tuple[list[dict[str, Any]], list[Any]]:
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
            rows.append(row)
            console.print(
                f"[dim]{row['status']}, {row.get('total_s', row['process_s']):.2f} s, "
                f"{row.get('peak_mb', 0):.0f} MB[/dim]"
            )
            if _over(row, args.budget):
                stopped.add(key)
            if c.tool == "p2pmarket":
                ours = row if row.get("status") == "optimal" else None
            elif ours is not None and row.get("status") == "optimal":
                pairs.append(pair_row(ours, row))
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
    (out / "table.txt").write_text(text.export_text())


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    console = Console(width=max(Console().width, 200))
    console.print(
        f"sizes {','.join(map(str, args.sizes))}; designs {','.join(args.designs)}; "
        f"storage {args.storage}; Pyomo up to {args.pyomo_max} peers; budget "
        f"{args.budget:g} s, timeout {args.timeout:g} s, memory {args.memory_limit_gb:g} GB"
    )
    start = time.perf_counter()
    rows, pairs = run(args, console)
    console.print(case_table(rows))
    if pairs:
        console.print(pair_table(pairs))
    disagree = [p for p in pairs if not p["agree"]]
    console.print(
        f"{len(rows)} cases, {len(pairs)} pairs ({len(disagree)} disagree) in "
        f"{time.perf_counter() - start:.0f} s; written to {args.out}"
    )
    if disagree:
        sys.exit(1)


if __name__ == "__main__":
    main()
