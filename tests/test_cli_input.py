"""Bad input through the command line (SPEC C1, C8, section 4).

Every invalid input is refused with exit code 2 and exactly one line on stderr that names the
field and the offending value; no traceback reaches the user and `run --out DIR` writes
nothing. An infeasible market exits with 1 and names the peer and the period. Valid files and
every built-in case pass `p2pmarket validate`.

Each rule is checked by writing a valid 3-peer scenario (grid, consumer, prosumer), breaking
one thing, and running both `p2pmarket validate FILE` and `p2pmarket run FILE --out DIR`.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

import p2pmarket
from p2pmarket.cli.main import app

EXIT_OK, EXIT_MARKET, EXIT_INPUT = 0, 1, 2
SCRIPT = Path(sys.executable).with_name("p2pmarket")
"""The installed `p2pmarket` script of this environment."""

Mutation = Callable[[dict[str, Any]], None]


def valid_scenario() -> dict[str, Any]:
    """A valid 3-peer, 2-period scenario: the grid, a consumer and a prosumer with storage."""
    return {
        "name": "three-peers",
        "periods": 2,
        "period_hours": 1.0,
        "communities": [{"id": "C1", "members": ["P2", "P3"]}],
        "peers": [
            {
                "id": "grid",
                "role": "grid",
                "generation": {"min_kw": 0, "max_kw": 1000, "offer_per_kwh": 0.1},
            },
            {"id": "P2", "role": "consumer", "load_kw": 30},
            {
                "id": "P3",
                "role": "prosumer",
                "load_kw": [10, 20],
                "generation": {"min_kw": 0, "max_kw": 50, "offer_per_kwh": 0.05},
                "storage": {"capacity_kwh": 10, "power_kw": 5},
            },
        ],
    }


# --- helpers ---------------------------------------------------------------------------------


def set_in(path: str, value: Any) -> Mutation:
    """Set a value at a dotted path (`peers.2.generation.min_kw`; numbers index lists)."""
    *parents, last = path.split(".")

    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def append_to(path: str, item: Any) -> Mutation:
    """Append `item` to the list at a dotted path."""
    *parents, last = path.split(".")

    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last].append(copy.deepcopy(item))

    return mutate


def duplicate_consumer(data: dict[str, Any]) -> None:
    data["peers"].append(copy.deepcopy(data["peers"][1]))


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def invoke(*args: str | Path) -> Result:
    """Run the CLI in-process; fail if an exception escaped (it would be a traceback)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"uncaught {result.exception!r} (a user would see a traceback)"
    )
    assert "Traceback" not in result.stdout
    assert "Traceback" not in result.stderr
    return result


def one_line(stderr: str) -> str:
    """The single line of stderr (fails unless there is exactly one)."""
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    assert stderr.endswith("\n")
    return lines[0]


def assert_nothing_written(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), f"files written to {out}"


@pytest.fixture
def scenario_dir(tmp_path: Path) -> Path:
    """A folder with a CSV file that broken scenarios may refer to."""
    (tmp_path / "load.csv").write_text("load,text\n10,1\n20,x\n", encoding="utf-8")
    return tmp_path


# --- one test per validation rule ------------------------------------------------------------

# (mutation of the valid scenario, field named in the message, offending value in the message)
# fmt: off
RULES = [
    pytest.param(
        append_to("communities.0.members", "P9"),
        "communities[C1].members", "'P9'",
        id="unknown-peer-in-community",
    ),
    pytest.param(
        append_to("communities", {"id": "C2", "members": ["P3"]}),
        "communities[C2].members", "'P3'",
        id="peer-in-two-communities",
    ),
    pytest.param(duplicate_consumer, "peers", "'P2'", id="duplicate-peer-id"),
    pytest.param(
        append_to("communities", {"id": "C1", "members": ["grid"]}),
        "communities", "'C1'",
        id="duplicate-community-id",
    ),
    pytest.param(
        set_in("peers.2.generation.min_kw", 60),
        "peers[P3].generation.min_kw", "60",
        id="pmin-above-pmax",
    ),
    pytest.param(set_in("peers.1.load_kw", -5), "peers[P2].load_kw", "-5", id="negative-load"),
    pytest.param(
        set_in("peers.2.load_kw", [1, 2, 3]),
        "peers[P3].load_kw", "3 values",
        id="series-of-wrong-length",
    ),
    pytest.param(
        set_in("peers.2.storage.charge_efficiency", 0),
        "peers[P3].storage.charge_efficiency", "got 0",
        id="storage-efficiency-zero",
    ),
    pytest.param(
        set_in("peers.2.storage.discharge_efficiency", 1.5),
        "peers[P3].storage.discharge_efficiency", "1.5",
        id="storage-efficiency-above-one",
    ),
    pytest.param(
        set_in("peers.2.storage.initial_soc", 1.2),
        "peers[P3].storage.initial_soc", "1.2",
        id="soc-fraction-above-one",
    ),
    pytest.param(
        set_in("peers.2.generation.max_kw", "abc"),
        "peers[P3].generation.max_kw", "'abc'",
        id="text-for-a-number",
    ),
    pytest.param(
        set_in("peers.2.load_kw", [10, "abc"]),
        "peers[P3].load_kw[1]", "'abc'",
        id="text-inside-a-series",
    ),
    pytest.param(
        set_in("peers.1.load_kw", True), "peers[P2].load_kw", "True", id="bool-for-number"
    ),
    pytest.param(set_in("colour", "red"), "colour", "unknown field", id="unknown-top-level-field"),
    pytest.param(
        set_in("peers.1.colour", "red"), "peers[P2].colour", "unknown field",
        id="unknown-peer-field",
    ),
    pytest.param(set_in("peers.1.role", "trader"), "peers[P2].role", "'trader'", id="unknown-role"),
    pytest.param(set_in("design", "foo"), "design", "'foo'", id="unknown-design-in-file"),
    pytest.param(set_in("objective", "foo"), "objective", "'foo'", id="unknown-objective-in-file"),
    pytest.param(
        set_in("community_fees", [{"from": "C1", "to": "C9", "fee": 0.01}]),
        "community_fees[0].to", "'C9'",
        id="unknown-community-in-community-fees",
    ),
    pytest.param(
        set_in("links", [["grid", "P9"]]), "links[0]", "'P9'", id="link-to-unknown-peer"
    ),
    pytest.param(set_in("links", [["P2", "P2"]]), "links[0]", "'P2'", id="self-link"),
    pytest.param(
        set_in("peers.1.buy_price_per_kwh", 0.01),
        "peers[P2].buy_price_per_kwh", "consumer",
        id="buy-price-on-non-grid-peer",
    ),
    pytest.param(
        set_in("peers.1.generation", {"max_kw": 5}),
        "peers[P2].generation", "consumer",
        id="consumer-with-generation",
    ),
    pytest.param(
        set_in("peers.1.load_kw", {"csv": "missing.csv", "column": "load"}),
        "peers[P2].load_kw.csv", "missing.csv",
        id="csv-file-missing",
    ),
    pytest.param(
        set_in("peers.1.load_kw", {"csv": "/proc/self/environ", "column": "load"}),
        "peers[P2].load_kw.csv", "/proc/self/environ is an absolute path",
        id="csv-file-outside-the-directory",
    ),
    pytest.param(
        set_in("peers.1.load_kw", {"csv": "../load.csv", "column": "load"}),
        "peers[P2].load_kw.csv", "../load.csv leads out of the scenario's directory",
        id="csv-file-dot-dot",
    ),
    pytest.param(
        set_in("peers.1.load_kw", {"csv": "load.csv", "column": "nope"}),
        "peers[P2].load_kw.column", "'nope'",
        id="csv-column-missing",
    ),
    pytest.param(
        set_in("peers.1.load_kw", {"csv": "load.csv", "column": "text"}),
        "peers[P2].load_kw.column", "'x'",
        id="csv-cell-not-a-number",
    ),
    pytest.param(set_in("periods", 0), "periods", "0", id="zero-periods"),
    pytest.param(set_in("period_hours", 0), "period_hours", "got 0", id="zero-period-hours"),
    pytest.param(set_in("peers", []), "peers", "at least one peer", id="empty-peers"),
    # issue 11 (docs/scenario-limits.md)
    pytest.param(
        set_in("periods", 1_000_000_000), "periods", "1,000,000,000", id="absurd-periods"
    ),
    pytest.param(set_in("peers.1.load_kw", 1e300), "peers[P2].load_kw", "1e+300", id="huge-load"),
    pytest.param(
        set_in("peers.2.generation.max_kw", 1e20),
        "peers[P3].generation.max_kw", "1e+20",
        id="huge-generation-bound",
    ),
    pytest.param(
        set_in("peers.1.load_kw", float("inf")), "peers[P2].load_kw", "inf", id="infinite-load"
    ),
    pytest.param(set_in("period_hours", 10_000), "period_hours", "10000", id="period-over-a-year"),
    pytest.param(set_in("period", 3), "period", "did you mean 'periods'?", id="typo-suggested"),
    pytest.param(
        set_in("peers.2.storage.capacity", 3),
        "peers[P3].storage.capacity", "did you mean 'capacity_kwh'?",
        id="nested-typo-suggested",
    ),
    pytest.param(
        set_in("peers.1.load_kw", {"csv": "load.csv"}),
        "peers[P2].load_kw.column", "`column: NAME`",
        id="csv-reference-without-column",
    ),
    pytest.param(
        set_in("peers.1.flexible_load", [{"max_kw": 1, "price_per_kwh": -0.1}]),
        "peers[P2].flexible_load[0].price_per_kwh", "-0.1",
        id="negative-flexible-price-never-served",
    ),
]
# fmt: on


@pytest.fixture(params=["validate", "run"])
def command(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Path], Result]:
    """`p2pmarket validate FILE`, or `p2pmarket run FILE --out DIR` checking DIR stays empty."""
    out = tmp_path / "out"

    def call(file: Path) -> Result:
        if request.param == "validate":
            return invoke("validate", file)
        result = invoke("run", file, "--out", out)
        assert_nothing_written(out)
        return result

    return call


@pytest.mark.parametrize(("mutate", "field", "value"), RULES)
def test_invalid_scenario_is_refused_in_one_line(
    scenario_dir: Path,
    command: Callable[[Path], Result],
    mutate: Mutation,
    field: str,
    value: str,
) -> None:
    data = valid_scenario()
    mutate(data)
    result = command(write_yaml(scenario_dir / "broken.yaml", data))

    assert result.exit_code == EXIT_INPUT
    line = one_line(result.stderr)
    assert f" {field}: " in line
    assert value in line


# (file name, file text, value named in the message); the field is always `file`
BAD_FILES = [
    pytest.param("broken.yaml", "peers: [unclosed\n", "broken.yaml", id="not-yaml"),
    pytest.param("broken.json", '{"peers": [', "broken.json", id="not-json"),
    pytest.param("broken.yaml", "- a\n- b\n", "broken.yaml", id="yaml-list-not-mapping"),
    pytest.param("broken.json", "[1, 2]", "broken.json", id="json-list-not-mapping"),
    pytest.param("broken.yaml", "", "broken.yaml", id="empty-file"),
    # issue 12, item 4: inputs that once hung, crashed or exhausted memory
    pytest.param(
        "broken.yaml",
        "periods: 1\nb0: &b0 [x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 9)}]\n" for i in range(1, 9)),
        "anchor or alias",
        id="alias-bomb",
    ),
    pytest.param("broken.yaml", "x: " + "[" * 5000 + "]" * 5000, "broken.yaml", id="deep-yaml"),
    pytest.param("broken.json", "[" * 100_000 + "]" * 100_000, "nesting", id="deep-json"),
    pytest.param("broken.yaml", "periods: " + "9" * 5000, "5,000 characters", id="huge-int"),
    pytest.param("broken.json", '{"periods": ' + "9" * 5000 + "}", "4,300", id="huge-int-json"),
    pytest.param("broken.yaml", "a: !!python/object:os.system ls\n", "YAML tag", id="tag"),
]


@pytest.mark.parametrize(("name", "text", "value"), BAD_FILES)
def test_unreadable_file_is_refused_in_one_line(
    tmp_path: Path, command: Callable[[Path], Result], name: str, text: str, value: str
) -> None:
    file = tmp_path / name
    file.write_text(text, encoding="utf-8")
    result = command(file)

    assert result.exit_code == EXIT_INPUT
    line = one_line(result.stderr)
    assert " file: " in line
    assert value in line


def test_missing_file_is_refused_in_one_line(
    tmp_path: Path, command: Callable[[Path], Result]
) -> None:
    result = command(tmp_path / "nowhere.yaml")

    assert result.exit_code == EXIT_INPUT
    line = one_line(result.stderr)
    assert " file: " in line
    assert "nowhere.yaml" in line


@pytest.mark.parametrize(
    ("option", "field"),
    [
        pytest.param("--design", "--design", id="design"),
        pytest.param("--objective", "--objective", id="objective"),
    ],
)
def test_unknown_option_value_is_refused_in_one_line(
    tmp_path: Path, option: str, field: str
) -> None:
    file = write_yaml(tmp_path / "valid.yaml", valid_scenario())
    out = tmp_path / "out"
    result = invoke("run", file, option, "foo", "--out", out)

    assert result.exit_code == EXIT_INPUT
    line = one_line(result.stderr)
    assert f" {field}: " in line
    assert "'foo'" in line
    assert_nothing_written(out)


def test_real_script_prints_no_traceback(tmp_path: Path) -> None:
    """The installed `p2pmarket` script, in its own process, as a user runs it."""
    data = valid_scenario()
    data["peers"][2]["generation"]["min_kw"] = 60
    file = write_yaml(tmp_path / "broken.yaml", data)
    out = tmp_path / "out"

    done = subprocess.run(
        [str(SCRIPT), "run", str(file), "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == EXIT_INPUT
    assert "Traceback" not in done.stdout + done.stderr
    line = one_line(done.stderr)
    assert "peers[P3].generation.min_kw" in line
    assert "60" in line
    assert_nothing_written(out)


def test_huge_bound_is_refused_before_the_solver_prints_anything(tmp_path: Path) -> None:
    """`max_kw: 1e20` once reached HiGHS, which printed warnings on stdout: refused first."""
    data = valid_scenario()
    data["peers"][0]["generation"]["max_kw"] = 1e20
    file = write_yaml(tmp_path / "huge.yaml", data)
    done = subprocess.run(
        [str(SCRIPT), "run", str(file)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == EXIT_INPUT
    assert done.stdout == ""
    assert "peers[grid].generation.max_kw: 1e+20 kW is out of range" in one_line(done.stderr)


def test_bad_size_limit_in_the_environment_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("P2PMARKET_MAX_PERIODS", "lots")
    result = invoke("validate", write_yaml(tmp_path / "valid.yaml", valid_scenario()))

    assert result.exit_code == EXIT_INPUT
    assert " P2PMARKET_MAX_PERIODS: " in one_line(result.stderr)
    assert "'lots'" in result.stderr


# --- infeasible market -----------------------------------------------------------------------


def infeasible_scenario() -> dict[str, Any]:
    """The consumer's only possible seller, the grid, has 10 kW for a 50 kW load."""
    return {
        "name": "short-grid",
        "periods": 2,
        "peers": [
            {"id": "grid", "role": "grid", "generation": {"max_kw": 10, "offer_per_kwh": 0.1}},
            {"id": "P2", "role": "consumer", "load_kw": 50},
        ],
    }


def test_infeasible_market_exits_1_naming_peer_and_period(tmp_path: Path) -> None:
    file = write_yaml(tmp_path / "infeasible.yaml", infeasible_scenario())
    out = tmp_path / "out"
    result = invoke("run", file, "--out", out)

    assert result.exit_code == EXIT_MARKET
    last = result.stderr.splitlines()[-1]
    assert last.startswith("error: ")
    assert "'P2'" in last
    assert "period 0" in last
    assert_nothing_written(out)


def test_infeasible_market_message_is_one_line(tmp_path: Path) -> None:
    # In its own process: inside pytest, log capture would hide linopy's warning.
    file = write_yaml(tmp_path / "infeasible.yaml", infeasible_scenario())
    done = subprocess.run(
        [str(SCRIPT), "run", str(file)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == EXIT_MARKET
    line = one_line(done.stderr)
    assert "'P2'" in line
    assert "period 0" in line


# --- bugs found: bad input that is not refused as the spec says ------------------------------


def test_out_pointing_at_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    file = write_yaml(tmp_path / "valid.yaml", valid_scenario())
    not_a_dir = tmp_path / "taken"
    not_a_dir.write_text("x", encoding="utf-8")
    result = invoke("run", file, "--out", not_a_dir)

    assert result.exit_code == EXIT_INPUT
    assert "taken" in one_line(result.stderr)


def test_python_name_from_underscore_is_refused(tmp_path: Path) -> None:
    data = valid_scenario()
    data["communities"].append({"id": "C2", "members": ["grid"]})
    data["community_fees"] = [{"from_": "C1", "to": "C2", "fee": 0.01}]
    result = invoke("validate", write_yaml(tmp_path / "broken.yaml", data))

    assert result.exit_code == EXIT_INPUT
    assert "from_" in one_line(result.stderr)


def test_null_peers_message_does_not_ask_for_a_number(tmp_path: Path) -> None:
    data = valid_scenario()
    data["peers"] = None
    result = invoke("validate", write_yaml(tmp_path / "broken.yaml", data))

    assert result.exit_code == EXIT_INPUT
    line = one_line(result.stderr)
    assert " peers: " in line
    assert "number" not in line


# --- valid input -----------------------------------------------------------------------------


def test_validate_accepts_a_valid_file(tmp_path: Path) -> None:
    result = invoke("validate", write_yaml(tmp_path / "valid.yaml", valid_scenario()))

    assert result.exit_code == EXIT_OK
    assert result.stderr == ""
    assert "valid" in result.stdout


def test_cases_lists_every_builtin_case() -> None:
    result = invoke("cases")

    assert result.exit_code == EXIT_OK
    for name in p2pmarket.cases.names():
        assert name in result.stdout


@pytest.mark.parametrize("name", p2pmarket.cases.names())
def test_validate_accepts_every_builtin_case(name: str) -> None:
    result = invoke("validate", name)

    assert result.exit_code == EXIT_OK
    assert result.stderr == ""
