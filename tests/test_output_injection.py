"""Text from a scenario never drives a terminal or a spreadsheet (issue 12, item 7;
docs/security.md).

Any string is a valid peer id (tests/test_peer_ids.py), so a scenario may name its peers,
itself, its communities and its currency with terminal control sequences (`ESC ] 0 ; ... BEL`
sets a terminal's title, a C1 `CSI` colours it, U+202E reverses the text after it) or with
spreadsheet formulas (`=HYPERLINK(...)`, `+1`, `@x`, `-cmd`). What p2pmarket prints escapes
the first (`\\x1b`, `\\u202e`); the CSV files it writes quote the second (`'=HYPERLINK(...)`)
and read back as they were; numbers are never touched (`-0.5` stays `-0.5`).
"""

from __future__ import annotations

import copy
import csv
import io
import re
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from p2pmarket import cases
from p2pmarket.cli.main import app
from p2pmarket.cli.render import terminal_text
from p2pmarket.core.scenario import Scenario
from p2pmarket.io.tables import (
    _column_cells,
    csv_text,
    pandas_csv_text,
    read_table,
    read_tables,
)

CASE = "five-peer-case-2"
IDS = {
    "grid": "\x1b]0;pwned\x07",
    "P2": "\u202eevil",
    "P3": '=HYPERLINK("http://example.com","click")',
    "P4": "+1",
    "P5": "@x",
}
"""The case's peers renamed: a title-setting OSC, a right-to-left override, formulas."""
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""What a terminal must never be sent: C0 controls but the line break, DEL, C1, bidi."""
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _invoke(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def _terminal(result: Result) -> str:
    return result.stdout + result.stderr


def _hostile(**changes: Any) -> dict[str, Any]:
    """The case with every text field that reaches an output made hostile."""
    data = copy.deepcopy(cases.load(CASE).to_dict())
    for peer in data["peers"]:
        peer["id"] = IDS[peer["id"]]
    for community in data["communities"]:
        community["members"] = [IDS[m] for m in community["members"]]
    data["communities"][2]["id"] = "-cmd\x9b31m"  # a C1 CSI
    data["name"] = "=1+1\x1b[31m"
    data["description"] = "\x1b[2J\u2066described"
    data["currency"] = "@US\u202eD"
    data.update(changes)
    return data


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(_hostile(), allow_unicode=True), encoding="utf-8")
    return path


def test_the_schema_accepts_such_text() -> None:
    """The schema refuses none of it (ids are data), so the outputs must be safe."""
    s = Scenario.from_dict(_hostile())
    assert set(s.peer_ids) == set(IDS.values())


def _assert_terminal_safe(result: Result) -> None:
    __tracebackhide__ = True
    found = UNSAFE.findall(_terminal(result))
    assert not found, (found, _terminal(result))


@pytest.mark.parametrize("design", ["p2p", "hybrid"])
def test_run_prints_no_control_character(scenario_file: Path, design: str) -> None:
    result = _invoke("run", scenario_file, "--design", design)
    assert result.exit_code == 0, result.output
    _assert_terminal_safe(result)
    out = result.stdout
    shown = ["\\x1b]0;pwned\\x07", "\\u202eevil", "=HYPERLINK(", "@x", "\\x1b[31m", "\\u202eD"]
    if design == "hybrid":
        shown.append("-cmd\\x9b31m")  # the community's manager trades
    for text in shown:
        assert text in out, text  # the value is shown, escaped, not dropped


def test_compare_prints_no_control_character(scenario_file: Path) -> None:
    result = _invoke("compare", scenario_file, "five-peer-case-1", "--design", "hybrid")
    assert result.exit_code == 0, result.output
    _assert_terminal_safe(result)


def test_error_lines_escape_control_characters(tmp_path: Path) -> None:
    data = _hostile()
    data["peers"][1]["id"] = data["peers"][0]["id"]  # the OSC id twice: named by the error
    path = tmp_path / "twice.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    for result in (
        _invoke("run", path),
        _invoke("run", tmp_path / "no\x1b]0;pwned\x07such\u202efile.yaml"),
        _invoke("run", CASE, "--out", tmp_path / "out\x1b[2J\u2067", "--design", "bogus"),
    ):
        assert result.exit_code == 2, result.output
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stderr.startswith("error: ")
        _assert_terminal_safe(result)
    assert "\\x1b]0;pwned\\x07" in _invoke("run", path).stderr


def _csv_cells(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_csv_text_cells_never_start_a_formula_and_numbers_stay(
    scenario_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = _invoke("run", scenario_file, "--design", "hybrid", "--out", out, "--format", "csv")
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("*.csv"))
    assert {"bills.csv", "dispatch.csv", "trades.csv"} <= {f.name for f in files}
    negative = 0
    for path in files:
        for row in _csv_cells(path):
            for column, cell in row.items():
                if _is_number(cell):
                    negative += cell.startswith("-")
                    continue
                assert not cell.startswith(FORMULA), (path.name, column, cell)
    assert negative > 0  # net imports of sellers: written as numbers, unquoted
    dispatch = pd.read_csv(out / "dispatch.csv")
    assert (dispatch["net_import_kw"] < 0).any()
    assert "'=HYPERLINK(" in (out / "dispatch.csv").read_text(encoding="utf-8")


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return cell.strip() == cell and cell not in ("nan", "inf", "-inf")


def test_p2pmarket_reads_its_quoted_cells_back_as_they_were(
    scenario_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = _invoke("run", scenario_file, "--design", "hybrid", "--out", out, "--format", "csv")
    assert result.exit_code == 0, result.output
    tables = read_tables(out)
    assert set(tables["dispatch"]["peer"]) == set(IDS.values())
    assert set(tables["bills"]["peer"]) == set(IDS.values())
    assert _invoke("report", out).exit_code == 0


def test_report_prints_no_control_character(scenario_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _invoke("run", scenario_file, "--out", out).exit_code == 0
    report = _invoke("report", out)
    assert report.exit_code == 0, report.output
    _assert_terminal_safe(report)


def test_report_reads_the_bills_back_as_they_were(scenario_file: Path, tmp_path: Path) -> None:
    from p2pmarket.cli.report_cmd import run_settlement

    out = tmp_path / "run"
    assert _invoke("run", scenario_file, "--out", out).exit_code == 0
    bills, _ = run_settlement(out)
    assert bills is not None
    assert set(bills["peer"]) == set(IDS.values())


# --- the two functions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
        ("a\u202eb", "a\\u202eb"),
        ("\u2066x\u2069", "\\u2066x\\u2069"),
        ("\x9b31m", "\\x9b31m"),
        ("del\x7f", "del\\x7f"),
        ("cr\rtab\t", "cr\\x0dtab\\x09"),
        ("two\nlines", "two\nlines"),
        ("Pé 太阳能 ☀ [kW]", "Pé 太阳能 ☀ [kW]"),
    ],
)
def test_terminal_text(text: str, shown: str) -> None:
    assert terminal_text(text) == shown


TEXT = st.text(
    alphabet=st.sampled_from(["=", "+", "-", "@", "\t", "\r", "'", "a", "1", " ", ",", '"']),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(TEXT, min_size=1, max_size=5), numbers=st.lists(st.floats(-5, 5)))
def test_csv_round_trip_of_any_text(values: list[str], numbers: list[float]) -> None:
    """Any text cell reads back as it was; none starts a formula; floats are written as the
    numbers they are (rounded to 6 decimals, unquoted), negative ones too."""
    table = pd.DataFrame({"peer": pd.Series(values, dtype="str"), "n": range(len(values))})
    text = csv_text(table)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert all(not row["peer"].startswith(FORMULA) for row in rows), text
    back = _read_back(text, {"peer": "str", "n": "int64"})
    assert back["peer"].tolist() == values
    floats = pd.DataFrame({"x": pd.Series(numbers, dtype=float)})
    cells = [row["x"] for row in csv.DictReader(io.StringIO(csv_text(floats), newline=""))]
    assert [float(c) for c in cells] == pytest.approx([round(v, 6) for v in numbers], abs=1e-9)
    assert all(not c.startswith("'") for c in cells)


def _read_back(text: str, dtypes: dict[str, str]) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        path.write_text(text, encoding="utf-8", newline="")
        return read_table(path, dtypes=dtypes)


def test_a_negative_number_is_written_as_it_is() -> None:
    table = pd.DataFrame({"peer": ["-cmd", "-0.5"], "x": [-0.5, -1e-9], "k": [-3, 4]})
    assert csv_text(table).splitlines() == ["peer,x,k", "'-cmd,-0.5,-3", "'-0.5,0.0,4"]


CELL_TEXT = st.text(
    alphabet=st.sampled_from(["=", "-", "'", "a", "1", " ", ",", '"', "\n", "\r", "é"]),
    max_size=5,
)


@settings(max_examples=80, deadline=None)
@given(
    text=st.lists(st.one_of(st.none(), CELL_TEXT), min_size=0, max_size=6),
    data=st.data(),
)
def test_column_writer_writes_what_pandas_writer_writes(text: list[str | None], data: Any) -> None:
    """`csv_text` writes tables of numbers, text and booleans column by column; pandas' own
    CSV writer (`pandas_csv_text`) is the other formulation: the same text, byte for byte,
    with quotes, line breaks, missing cells, -0, NaN and formula-like cells."""
    n = len(text)
    floats = data.draw(
        st.lists(
            st.one_of(st.floats(-1e6, 1e6), st.just(float("nan")), st.just(-0.0)),
            min_size=n,
            max_size=n,
        )
    )
    ints = data.draw(st.lists(st.integers(-(2**40), 2**40), min_size=n, max_size=n))
    flags = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    table = pd.DataFrame(
        {
            "peer": pd.Series(text, dtype="str"),
            "x,y": pd.Series(floats, dtype=float),
            "k": pd.Series(ints, dtype="int64"),
            "ok": pd.Series(flags, dtype=bool),
            "raw": pd.Series(text, dtype=object),
        }
    )
    assert _column_cells(table) is not None  # the column writer, not pandas', wrote it
    assert csv_text(table) == pandas_csv_text(table)
    assert csv_text(table[["peer", "k"]]) == pandas_csv_text(table[["peer", "k"]])
