"""Scenario files and run outputs (SPEC C1, section 4, section 5).

YAML and JSON read to the same `Scenario`; a `{csv: FILE, column: NAME}` series equals the
inline list; exported built-in cases and dumped scenarios load back equal; and
`p2pmarket run FILE --out DIR` writes tables that agree with `p2pmarket.clear`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner, Result

import p2pmarket
from p2pmarket import Scenario, clear, dump_scenario, load_scenario
from p2pmarket.cli.main import app


def simple_scenario() -> dict[str, Any]:
    """3 peers, 2 periods: the grid, a consumer and a prosumer with a PV-like profile."""
    return {
        "name": "three-peers",
        "periods": 2,
        "period_hours": 1.0,
        "design": "p2p",
        "objective": "system-cost",
        "communities": [{"id": "C1", "members": ["P2", "P3"]}],
        "peers": [
            {
                "id": "grid",
                "role": "grid",
                "generation": {"min_kw": 0, "max_kw": 1000, "offer_per_kwh": 0.1},
                "export_fee": 0.01,
            },
            {"id": "P2", "role": "consumer", "load_kw": [30, 45]},
            {
                "id": "P3",
                "role": "prosumer",
                "load_kw": 10,
                "generation": {"min_kw": 0, "max_kw": [50, 20], "offer_per_kwh": 0.05},
                "export_fee": 0.002,
            },
        ],
    }


def rich_scenario() -> dict[str, Any]:
    """Every optional part: storage, flexible load, communities, contracts, links, lists."""
    return {
        "name": "rich",
        "description": "every optional part",
        "currency": "EUR",
        "periods": 3,
        "period_hours": 0.5,
        "design": "hybrid",
        "objective": "paper",
        "communities": [
            {"id": "C1", "members": ["grid"]},
            {
                "id": "C2",
                "members": ["P2", "P3"],
                "intra_fee": [0.0, 0.001, 0.002],
                "export_fee": 0.003,
            },
        ],
        "community_fees": [
            {"from": "C2", "to": "C1", "fee": 0.004},
            {"from": "C1", "to": "C2", "fee": [0.01, 0.02, 0.03]},
        ],
        "links": [["grid", "P2"], ["grid", "P3"], ["P3", "P2"], ["P3", "grid"]],
        "peers": [
            {
                "id": "grid",
                "role": "grid",
                "generation": {"max_kw": 1000, "offer_per_kwh": [0.1, 0.12, 0.09]},
                "export_fee": 0.01,
                "buy_price_per_kwh": [0.03, 0.04, 0.02],
            },
            {
                "id": "P2",
                "role": "consumer",
                "load_kw": [30, 35, 40],
                "flexible_load": [{"max_kw": [5, 0, 5], "price_per_kwh": 0.08}],
            },
            {
                "id": "P3",
                "role": "prosumer",
                "load_kw": 10,
                "generation": {"min_kw": [0, 1, 0], "max_kw": [50, 60, 0], "offer_per_kwh": 0.05},
                "export_fee": 0.002,
                "storage": {
                    "capacity_kwh": 20,
                    "power_kw": 10,
                    "charge_efficiency": 0.95,
                    "discharge_efficiency": 0.9,
                    "initial_soc": 0.5,
                    "final_soc": 0.25,
                },
            },
        ],
    }


def write(path: Path, data: Any) -> Path:
    """A scenario dict as YAML or JSON, by the file's suffix."""
    if path.suffix == ".json":
        path.write_text(json.dumps(data), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr}{result.exception!r}"
    return result


# --- YAML, JSON and CSV ----------------------------------------------------------------------


@pytest.mark.parametrize("make", [simple_scenario, rich_scenario], ids=["simple", "rich"])
def test_yaml_and_json_give_the_same_scenario(
    tmp_path: Path, make: Callable[[], dict[str, Any]]
) -> None:
    from_yaml = load_scenario(write(tmp_path / "s.yaml", make()))
    from_json = load_scenario(write(tmp_path / "s.json", make()))

    assert from_yaml == from_json
    assert from_yaml == Scenario.from_dict(make())


def test_yml_suffix_is_read_as_yaml(tmp_path: Path) -> None:
    assert load_scenario(write(tmp_path / "s.yml", simple_scenario())) == Scenario.from_dict(
        simple_scenario()
    )


# (where the series lives in the dict, its inline values)
CSV_SERIES = [
    pytest.param(("peers", 1, "load_kw"), [30, 45], id="load"),
    pytest.param(("peers", 2, "generation", "max_kw"), [50, 20], id="generation-max"),
    pytest.param(("peers", 0, "generation", "offer_per_kwh"), [0.1, 0.11], id="offer"),
    pytest.param(("peers", 2, "export_fee"), [0.002, 0.003], id="export-fee"),
    pytest.param(("communities", 0, "intra_fee"), [0.0, 0.001], id="community-intra-fee"),
]


def put(data: dict[str, Any], where: tuple[str | int, ...], value: Any) -> None:
    node: Any = data
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value


@pytest.mark.parametrize(("where", "values"), CSV_SERIES)
def test_csv_series_equals_inline_list(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: tuple[str | int, ...],
    values: list[float],
) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "series.csv").write_text(
        "other,values\n" + "".join(f"0,{v}\n" for v in values), encoding="utf-8"
    )
    inline, from_csv = simple_scenario(), simple_scenario()
    put(inline, where, values)
    put(from_csv, where, {"csv": "series.csv", "column": "values"})
    # CSV paths are relative to the scenario file, not to the working directory.
    monkeypatch.chdir(tmp_path)

    loaded = load_scenario(write(folder / "s.yaml", from_csv))

    assert loaded == Scenario.from_dict(inline)


def test_csv_series_in_a_subfolder(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "load.csv").write_text("hour,P2\n0,30\n1,45\n", encoding="utf-8")
    data = simple_scenario()
    data["peers"][1]["load_kw"] = {"csv": "data/load.csv", "column": "P2"}

    assert load_scenario(write(tmp_path / "s.json", data)) == Scenario.from_dict(simple_scenario())


# (CSV text, or None for a folder in its place; what the one-line message must hold)
BAD_CSV = [
    pytest.param("values\n30\n", "s.csv:values has 1 row of values, expected 2", id="too-few-rows"),
    pytest.param(
        "values\n1\n2\n3\n", "s.csv:values has 3 rows of values, expected 2", id="too-many"
    ),
    pytest.param("values\n30\nabc\n", "s.csv:values row 2 (line 3) is 'abc'", id="text-cell"),
    pytest.param("values,b\n30,1\n,2\n", "s.csv:values row 2 (line 3) is empty", id="empty"),
    pytest.param("values\n30\ninf\n", "row 2 (line 3) is 'inf', not a finite", id="inf-cell"),
    pytest.param("", "for column 'values'", id="empty-file"),
    pytest.param(None, "for column 'values'", id="a-folder"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CSV)
def test_bad_csv_series_names_the_file_and_the_column(
    tmp_path: Path, text: str | None, expected: str
) -> None:
    if text is None:
        (tmp_path / "s.csv").mkdir()
    else:
        (tmp_path / "s.csv").write_text(text, encoding="utf-8")
    data = simple_scenario()
    data["peers"][1]["load_kw"] = {"csv": "s.csv", "column": "values"}

    with pytest.raises(p2pmarket.ScenarioError) as refused:
        load_scenario(write(tmp_path / "s.yaml", data))

    assert refused.value.field.startswith("peers[P2].load_kw.")
    assert expected in str(refused.value)
    assert "s.csv" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_missing_csv_file_names_the_file_and_the_column(tmp_path: Path) -> None:
    data = simple_scenario()
    data["peers"][1]["load_kw"] = {"csv": "nowhere.csv", "column": "values"}

    with pytest.raises(p2pmarket.ScenarioError, match=r"nowhere\.csv.*'values'") as refused:
        load_scenario(write(tmp_path / "s.yaml", data))
    assert refused.value.field == "peers[P2].load_kw.csv"


@pytest.mark.parametrize(
    ("reference", "field", "expected"),
    [
        pytest.param({"csv": "s.csv"}, "column", "needs `column: NAME`", id="no-column"),
        pytest.param({"column": "values"}, "csv", "needs `csv: FILE`", id="no-file"),
        pytest.param(
            {"csv": "s.csv", "colum": "values"}, "colum", "did you mean 'column'?", id="typo"
        ),
        pytest.param({"csv": "s.csv", "column": 3}, "column", "as text, got 3", id="not-text"),
    ],
)
def test_incomplete_csv_reference_says_what_is_missing(
    tmp_path: Path, reference: dict[str, Any], field: str, expected: str
) -> None:
    (tmp_path / "s.csv").write_text("values\n1\n2\n", encoding="utf-8")
    data = simple_scenario()
    data["peers"][1]["load_kw"] = reference

    with pytest.raises(p2pmarket.ScenarioError) as refused:
        load_scenario(write(tmp_path / "s.yaml", data))
    assert refused.value.field == f"peers[P2].load_kw.{field}"
    assert expected in str(refused.value)
    assert "number" not in str(refused.value)


def test_csv_file_used_by_several_series_is_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "s.csv").write_text("a,b\n30,50\n45,20\n", encoding="utf-8")
    data = simple_scenario()
    data["peers"][1]["load_kw"] = {"csv": "s.csv", "column": "a"}
    data["peers"][2]["generation"]["max_kw"] = {"csv": "s.csv", "column": "b"}
    reads: list[object] = []
    read_csv = pd.read_csv

    def counting(*args: Any, **kwargs: Any) -> pd.DataFrame:
        reads.append(args[0])
        return read_csv(*args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", counting)

    assert load_scenario(write(tmp_path / "s.yaml", data)) == Scenario.from_dict(simple_scenario())
    assert len(reads) == 1


# --- built-in cases and round trips ----------------------------------------------------------


@pytest.mark.parametrize("name", p2pmarket.cases.names())
def test_exported_case_loads_back_equal(tmp_path: Path, name: str) -> None:
    target = tmp_path / f"{name}.yaml"
    invoke("cases", "export", name, "--out", target)

    assert load_scenario(target) == p2pmarket.cases.load(name)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize("make", [simple_scenario, rich_scenario], ids=["simple", "rich"])
def test_dump_then_load_round_trips(
    tmp_path: Path, make: Callable[[], dict[str, Any]], suffix: str
) -> None:
    scenario = Scenario.from_dict(make())
    file = tmp_path / f"dumped{suffix}"
    dump_scenario(scenario, file)

    assert load_scenario(file) == scenario


def test_dump_writes_the_file_format_key_from(tmp_path: Path) -> None:
    file = tmp_path / "dumped.yaml"
    dump_scenario(Scenario.from_dict(rich_scenario()), file)
    raw = yaml.safe_load(file.read_text(encoding="utf-8"))

    assert [set(fee) for fee in raw["community_fees"]] == [{"from", "to", "fee"}] * 2
    assert raw["community_fees"][0]["from"] == "C2"


def test_dump_leaves_no_temporary_files(tmp_path: Path) -> None:
    dump_scenario(Scenario.from_dict(simple_scenario()), tmp_path / "dumped.yaml")

    assert [p.name for p in tmp_path.iterdir()] == ["dumped.yaml"]


# --- p2pmarket run FILE --out DIR --------------------------------------------------------------


def test_run_writes_tables_that_agree_with_clear(tmp_path: Path) -> None:
    file = write(tmp_path / "s.yaml", simple_scenario())
    out = tmp_path / "out"
    invoke("run", file, "--out", out)
    expected = clear(load_scenario(file))

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert {"status", "design", "objective", "objective_kind"} <= set(summary)
    assert summary["status"] == "optimal"
    assert summary["design"] == "p2p"
    assert summary["objective_kind"] == "system-cost"
    assert summary["objective"] == pytest.approx(expected.objective, rel=1e-9, abs=1e-9)

    dispatch = pd.read_csv(out / "dispatch.csv")
    assert len(dispatch) == 3 * 2  # peers x periods
    assert len(dispatch) == len(expected.dispatch)
    columns = ["period", "peer", "generation_kw", "load_kw", "import_kw", "export_kw"]
    pd.testing.assert_frame_equal(
        dispatch[columns],
        expected.dispatch[columns].reset_index(drop=True),
        check_dtype=False,
        atol=1e-9,
    )

    trades = pd.read_csv(out / "trades.csv")
    assert len(trades) == len(expected.trades)
    assert trades["energy_kwh"].sum() == pytest.approx(expected.trades["energy_kwh"].sum())


@pytest.mark.parametrize(
    ("flags", "design", "objective_kind"),
    [
        pytest.param([], "p2p", "system-cost", id="from-file"),
        pytest.param(["--design", "community"], "community", "system-cost", id="design"),
        pytest.param(["--objective", "paper"], "p2p", "paper", id="objective"),
        pytest.param(["--design", "hybrid", "--objective", "paper"], "hybrid", "paper", id="both"),
    ],
)
def test_flags_override_the_file(
    tmp_path: Path, flags: list[str], design: str, objective_kind: str
) -> None:
    file = write(tmp_path / "s.yaml", simple_scenario())
    out = tmp_path / "out"
    invoke("run", file, *flags, "--out", out)
    expected = clear(load_scenario(file), design=design, objective=objective_kind)

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["design"] == design
    assert summary["objective_kind"] == objective_kind
    assert summary["objective"] == pytest.approx(expected.objective, rel=1e-9, abs=1e-9)
