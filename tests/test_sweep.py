"""Sweeps on Dask (issue 14, item 3): the same table on a real local cluster as in this
process, each row what `run_market` gives for that variant, failures as rows, resume after
an interruption without redoing what was done, and the command line's mistakes and files.

The stand-in generator below (`tiny_community`, the signature of
`p2pmarket.generate.community`) builds a 5-peer market in a blink; it counts its calls in a
file and can be told to raise KeyboardInterrupt on a given call (the journal's test).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from p2pmarket import cases
from p2pmarket.app.run import Clearings, run_market
from p2pmarket.app.sweep import Generator, Journal, plan_sweep, sweep
from p2pmarket.cli.main import app
from p2pmarket.cli.sweep_cmd import journal_path
from p2pmarket.core.scenario import Scenario
from p2pmarket.core.solve import SolverOptions
from p2pmarket.errors import OptionError
from p2pmarket.io.outputs import MARKER
from p2pmarket.io.tables import read_tables

distributed = pytest.importorskip("distributed")

CASE = "five-peer-case-2"
CASE_GRID = {"design": ["p2p", "community", "hybrid"], "rule": ["marginal", "mid-market"]}
TINY_GRID = {"households": [1, 2, 1000], "pv_share": [0.5, 0.9]}
"""households=1000 makes the market infeasible (its load exceeds every source); pv_share=0.9
makes the stand-in raise; two variants are fine."""


def tiny_community(
    households: int,
    pv_share: float,
    battery_share: float,
    *,
    year: int = 2023,
    seed: int = 0,
    hours: int | None = None,
    calls: Path | None = None,
    stop: Path | None = None,
) -> Scenario:
    """A stand-in for `p2pmarket.generate.community`: the 5-peer Case II with its loads
    times `households` and its PV times `pv_share / 0.5`. Each call appends a line to
    `calls`; when the file `stop` holds N, the N-th call raises KeyboardInterrupt."""
    if calls is not None:
        with calls.open("a") as handle:
            handle.write(f"{households} {pv_share}\n")
        if stop is not None and stop.exists() and calls_made(calls) == int(stop.read_text()):
            raise KeyboardInterrupt
    if pv_share > 0.8:
        raise ValueError(f"no roof holds pv_share={pv_share}")
    data = cases.load(CASE).to_dict()
    data["periods"] = hours or 1
    for peer in data["peers"]:
        if peer["role"] != "grid":
            peer["load_kw"] = peer["load_kw"] * households
        if peer["role"] == "prosumer":
            peer["generation"]["max_kw"] *= pv_share / 0.5
    return Scenario.from_dict(data)


def calls_made(calls: Path) -> int:
    return len(calls.read_text().splitlines())


def _variable(table: pd.DataFrame) -> pd.DataFrame:
    """A table without its run times (the one column that differs from run to run)."""
    return table.drop(columns="run_time_s")


@pytest.fixture(scope="module")
def case_table() -> pd.DataFrame:
    """Designs x rules on Case II, in this process."""
    return sweep(cases.load(CASE), CASE_GRID)


@pytest.fixture(scope="module")
def tiny_table() -> pd.DataFrame:
    return sweep(Generator("community", {"battery_share": 0.0}, tiny_community), TINY_GRID)


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": ":0"},
    )
    with cluster, distributed.Client(cluster, set_as_default=False) as c:
        yield c


# --- the library -----------------------------------------------------------------------


def test_a_local_cluster_gives_the_table_of_a_serial_run(
    client: object, case_table: pd.DataFrame, tiny_table: pd.DataFrame
) -> None:
    on_cluster = sweep(cases.load(CASE), CASE_GRID, client=client)
    pd.testing.assert_frame_equal(_variable(on_cluster), _variable(case_table))
    assert (on_cluster["run_time_s"] > 0).all()
    workers = client.scheduler_info()["workers"]  # type: ignore[attr-defined]
    assert len(workers) == 2
    # the stand-in generator runs on the workers (only its arguments travel), failures too
    tiny = sweep(
        Generator("community", {"battery_share": 0.0}, tiny_community), TINY_GRID, client=client
    )
    pd.testing.assert_frame_equal(_variable(tiny), _variable(tiny_table))


def test_each_row_is_run_market_on_its_variant(case_table: pd.DataFrame) -> None:
    scenario = cases.load(CASE)
    clearings = Clearings(SolverOptions(threads=1))
    assert list(case_table[["design", "rule"]].itertuples(index=False, name=None)) == [
        (d, r) for d in CASE_GRID["design"] for r in CASE_GRID["rule"]
    ]
    for row in case_table.itertuples(index=False):
        run = run_market(scenario, row.design, None, row.rule, clearings=clearings)
        assert row.status == "ok" and pd.isna(row.error)
        assert row.objective == pytest.approx(run.result.objective, rel=1e-9)
        assert row.objective_kind == scenario.objective
        assert row.savings == pytest.approx(run.settlement.bills["savings"].sum(), abs=1e-9)
        assert row.savings_total == pytest.approx(run.kpis.savings_total, abs=1e-9)
        assert row.traded_total_kwh == pytest.approx(run.kpis.traded_kwh["total"], abs=1e-9)
        assert row.total_cost == pytest.approx(run.kpis.total_cost, abs=1e-9)


def test_a_failing_variant_is_a_row_with_its_error(tiny_table: pd.DataFrame) -> None:
    by = tiny_table.set_index(["households", "pv_share"])
    assert list(by.loc[[(1, 0.5), (2, 0.5)], "status"]) == ["ok", "ok"]
    infeasible = by.loc[(1000, 0.5)]
    assert infeasible["status"] == "failed"
    assert infeasible["error"].startswith("infeasible market: ")
    assert pd.isna(infeasible["objective"])
    raised = tiny_table[tiny_table["pv_share"] == 0.9]
    assert list(raised["status"]) == ["failed"] * 3
    assert set(raised["error"]) == {"ValueError: no roof holds pv_share=0.9"}
    for row in tiny_table[tiny_table["status"] == "ok"].itertuples(index=False):
        expected = run_market(tiny_community(row.households, row.pv_share, 0.0))
        assert row.objective == pytest.approx(expected.result.objective, rel=1e-9)
        assert row.savings == pytest.approx(expected.settlement.bills["savings"].sum())


def test_an_interrupted_sweep_resumes_without_redoing_finished_variants(
    tmp_path: Path, tiny_table: pd.DataFrame
) -> None:
    calls, stop, journal = tmp_path / "calls", tmp_path / "stop", tmp_path / "journal.jsonl"
    stand_in = functools.partial(tiny_community, calls=calls, stop=stop)
    base = Generator("community", {"battery_share": 0.0}, stand_in)
    stop.write_text("4")
    with pytest.raises(KeyboardInterrupt):
        sweep(base, TINY_GRID, journal=journal)
    assert len(journal.read_text().splitlines()) == 3  # the three variants before the 4th
    first = Journal(journal).rows()
    stop.unlink()
    calls.write_text("")
    resumed = sweep(base, TINY_GRID, journal=journal)
    plan = plan_sweep(base, TINY_GRID)
    missing = [dict(v.parameters) for v in plan.variants if v.key not in first]
    assert [line.split() for line in calls.read_text().splitlines()] == [
        [str(p["households"]), str(p["pv_share"])] for p in missing
    ]
    # the stand-in's own arguments (calls, stop) are part of the base: other keys
    same = ["variant", "run_time_s"]
    pd.testing.assert_frame_equal(resumed.drop(columns=same), tiny_table.drop(columns=same))
    kept = resumed.set_index("variant").loc[list(first), "run_time_s"]
    assert list(kept) == [first[key]["run_time_s"] for key in first]  # not run again
    # a line cut short by a kill is skipped, and the next row starts on a line of its own
    with journal.open("ab") as handle:
        handle.write(b'{"variant": "cut sho')
    calls.write_text("")
    again = sweep(base, {**TINY_GRID, "households": [1, 2, 1000, 3]}, journal=journal)
    assert calls.read_text().splitlines() == ["3 0.5", "3 0.9"]
    assert len(again) == 8 and len(Journal(journal).rows()) == 8


def test_the_library_refuses_a_bad_grid_before_any_work() -> None:
    scenario = cases.load(CASE)
    for grid, words in [
        ({"pv_share": [0.2]}, ["'pv_share' is an argument of a generator"]),
        ({"desing": ["p2p"]}, ["'desing' is not a parameter"]),
        ({"design": ["p2p", "p2p"]}, ["design='p2p' is given twice"]),
        ({"rule": ["fair"]}, ["rule='fair' is not one of marginal"]),
        ({"uniform_fee": [-1]}, ["uniform_fee=-1 must be a number from 0"]),
    ]:
        with pytest.raises(OptionError) as info:
            plan_sweep(scenario, grid)
        assert all(w in str(info.value) for w in words), str(info.value)
    stand_in = Generator("community", {}, tiny_community)
    with pytest.raises(OptionError, match="needs pv_share and battery_share"):
        plan_sweep(stand_in, {"households": [1]})
    with pytest.raises(OptionError, match=r"households='many' must be a whole number"):
        plan_sweep(stand_in, {"households": ["many"], "pv_share": [0], "battery_share": [0]})


# --- the command line ------------------------------------------------------------------


def _invoke(*args: object) -> Result:
    result = CliRunner().invoke(app, ["sweep", *(str(a) for a in args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--grid", "design=p2p,barter"], ["--grid", "design='barter'"]),
        (["--grid", "design"], ["--grid", "'design' is not NAME=VALUE"]),
        (["--grid", "design=p2p,"], ["--grid", "a value is empty"]),
        (
            ["--grid", "rule=marginal", "--grid", "rule=mid-market"],
            ["--grid", "rule is given twice"],
        ),
        (["--grid", "households=10,20"], ["--grid", "'households' is an argument of a generator"]),
        (["--grid", "uniform_fee=cheap"], ["--grid", "uniform_fee='cheap' must be a number"]),
        (["--grid", "design=p2p", "--workers", "0"], ["--workers", "0"]),
        (["--grid", "design=p2p", "--workers", "2", "--scheduler", "tcp://x:1"], ["--scheduler"]),
        (["--grid", "design=p2p", "--time-limit", "-1"], ["--time-limit", "-1"]),
        (["--grid", "design=p2p", "--window", "0"], ["--window", "0"]),
        (["--grid", "design=p2p", "--lookahead", "3"], ["--lookahead", "give window"]),
    ],
)
def test_command_line_mistakes_are_one_line_before_any_work(
    tmp_path: Path, args: list[str], words: list[str]
) -> None:
    out = tmp_path / "sweep"
    result = _invoke(CASE, "--out", out, *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert all(w in lines[0] for w in words), lines[0]
    assert not out.exists() and not journal_path(out).exists()


def test_a_generator_spec_mistake_names_it(tmp_path: Path) -> None:
    for spec, words in [
        ("community:households=ten", ["households='ten' must be a whole number"]),
        ("community:household=10", ["'household' is not an argument"]),
    ]:
        result = _invoke(spec, "--out", tmp_path / "x", "--grid", "pv_share=0.1")
        assert result.exit_code == 2
        assert all(w in result.stderr for w in words), result.stderr


def test_ctrl_c_keeps_the_journal_and_the_same_command_resumes(
    tmp_path: Path, case_table: pd.DataFrame
) -> None:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) on a 2-worker local
    cluster: one line, exit 130, nothing at --out, the journal kept; the same command again
    runs only the missing variants and writes the whole table as CSV and Parquet."""
    out = tmp_path / "sweep"
    grid = [
        a for name, values in CASE_GRID.items() for a in ("--grid", f"{name}={','.join(values)}")
    ]
    command = [sys.executable, "-m", "p2pmarket", "sweep", CASE, *grid, "--out", str(out)]
    journal = journal_path(out)
    process = subprocess.Popen(
        [*command, "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if journal.exists() and len(journal.read_bytes().splitlines()) >= 2:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: interrupted after "), stderr
    assert str(journal) in lines[0]
    assert not out.exists()
    before = {
        json.loads(line)["variant"]: json.loads(line) for line in journal.read_text().splitlines()
    }
    assert 2 <= len(before) < len(case_table)

    result = _invoke(*command[4:], "--workers", "1")
    assert result.exit_code == 0, result.output
    assert f"{len(before)} of them from the journal" in result.stdout
    assert not journal.exists()
    assert (out / MARKER).is_file()
    assert sorted(p.name for p in out.iterdir()) == [
        MARKER,
        "sweep.csv",
        "sweep.parquet",
        "tables.json",
    ]
    from_csv = read_tables(out)["sweep"]
    from_parquet = read_tables(out, format="parquet")["sweep"]
    pd.testing.assert_frame_equal(from_csv, from_parquet, check_exact=False, atol=5e-7)
    pd.testing.assert_frame_equal(_variable(from_parquet), _variable(case_table))
    kept = from_parquet.set_index("variant").loc[list(before), "run_time_s"]
    assert list(kept) == [row["run_time_s"] for row in before.values()]  # not run again


@pytest.mark.skipif(
    importlib.util.find_spec("p2pmarket.generate.community") is None,
    reason="p2pmarket.generate.community is not there yet",
)
def test_a_generator_sweep_from_the_command_line(tmp_path: Path) -> None:
    from p2pmarket.generate.community import community

    out = tmp_path / "sweep"
    result = _invoke(
        "community:households=4,hours=3,seed=1", "--grid", "pv_share=0,1",
        "--grid", "battery_share=0,1", "--workers", "1", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = read_tables(out, format="parquet")["sweep"]
    assert list(table.columns[:3]) == ["variant", "pv_share", "battery_share"]
    assert list(table["status"]) == ["ok"] * 4, list(table["error"])
    for row in table.itertuples(index=False):
        scenario = community(4, row.pv_share, row.battery_share, seed=1, hours=3)
        expected = run_market(scenario)
        assert row.objective == pytest.approx(expected.result.objective, rel=1e-9)
        assert row.savings == pytest.approx(expected.settlement.bills["savings"].sum())


def test_a_sweep_rolls_each_variant_when_asked(tmp_path: Path) -> None:
    """`--window 24 --lookahead 0` clears each variant day by day: its row is `run_market`
    with the same rolling horizon."""
    from p2pmarket.generate.community import community

    out = tmp_path / "sweep"
    result = _invoke(
        "community:households=4,hours=72,seed=2,pv_share=1", "--grid", "battery_share=1",
        "--window", "24", "--lookahead", "0", "--workers", "1", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = read_tables(out, format="parquet")["sweep"].itertuples(index=False)
    scenario = community(4, 1.0, 1.0, seed=2, hours=72)
    rolled = run_market(scenario, options=SolverOptions(window=24, lookahead=0))
    assert row.objective == pytest.approx(rolled.result.objective, rel=1e-9)
    assert rolled.result.windows and len(rolled.result.windows) == 3
