"""Scenario limits and messages (docs/scenario-limits.md; issue 11, items 2, 11 and 17).

- Size: an absurd `periods` is refused before anything proportional to it is allocated
  (checked in a subprocess under a 2 GB address-space cap), and the limits can be raised by
  keyword or environment variable.
- Physical range: powers, energies, prices and period lengths beyond the documented range
  are refused naming the field and the value; NaN and infinity are refused.
- Messages: an unknown key at any level suggests the closest field; a CSV reference says
  what it lacks; counts are singular or plural as they should be; a negative flexible price
  that can never be served is refused.
"""

from __future__ import annotations

import copy
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import p2pmarket
from p2pmarket import Scenario, ScenarioError
from p2pmarket.core.scenario.limits import (
    MAX_ENERGY_KWH,
    MAX_PERIOD_HOURS,
    MAX_POWER_KW,
    MAX_PRICE_PER_KWH,
    Limits,
)
from p2pmarket.core.scenario.messages import plural
from p2pmarket.errors import OptionError
from p2pmarket.io.scenario_files import limits_from_environ, load_scenario

SCRIPT = Path(sys.executable).with_name("p2pmarket")
MEMORY_CAP = 2 * 1024**3  # bytes of address space for the validating process


def scenario() -> dict[str, Any]:
    """A valid 3-peer, 2-period market with every kind of number the limits cover."""
    return {
        "periods": 2,
        "uniform_fee": None,
        "communities": [{"id": "C1", "members": ["P2", "P3"], "intra_fee": 0.001}],
        "peers": [
            {
                "id": "grid",
                "role": "grid",
                "generation": {"max_kw": 1000, "offer_per_kwh": 0.1},
                "buy_price_per_kwh": 0.02,
                "export_fee": 0.01,
            },
            {
                "id": "P2",
                "role": "consumer",
                "load_kw": 30,
                "flexible_load": [{"max_kw": 5, "price_per_kwh": 0.08}],
            },
            {
                "id": "P3",
                "role": "prosumer",
                "load_kw": [10, 20],
                "generation": {"min_kw": 0, "max_kw": 50, "offer_per_kwh": 0.05},
                "storage": {"capacity_kwh": 10, "power_kw": 5},
            },
        ],
    }


def with_value(path: str, value: Any, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of `data` (default: `scenario()`) with the value at a dotted path replaced."""
    data = copy.deepcopy(data if data is not None else scenario())
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return data


def refused(data: dict[str, Any], **kwargs: Any) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        Scenario.from_dict(data, **kwargs)
    assert "\n" not in str(caught.value)
    return caught.value


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# --- size: refused before allocating, in a process with a memory cap ----------------------


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def validate_capped(file: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`p2pmarket validate FILE` in its own process, with at most 2 GB of address space: a
    scenario expanded to a billion floats (8 GB) fails with MemoryError there, not by taking
    the machine down."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("P2PMARKET_")}
    environ.update(env, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    return subprocess.run(
        [str(SCRIPT), "validate", str(file)],
        capture_output=True, text=True, timeout=120, check=False, env=environ,
        preexec_fn=_cap_memory,
    )  # fmt: skip


def billion_periods() -> dict[str, Any]:
    return {
        "periods": 1_000_000_000,
        "peers": [
            {"id": "grid", "role": "grid", "generation": {"max_kw": 10, "offer_per_kwh": 0.1}},
            {"id": "P2", "role": "consumer", "load_kw": 3},
        ],
    }


def test_a_billion_periods_is_refused_in_one_line_under_a_memory_cap(tmp_path: Path) -> None:
    done = validate_capped(write_yaml(tmp_path / "huge.yaml", billion_periods()))

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    (line,) = done.stderr.splitlines()
    assert "periods: 1,000,000,000 is more than the limit of 100,000 periods" in line
    assert "P2PMARKET_MAX_PERIODS" in line


def test_raised_limits_validate_a_billion_periods_of_scalars_without_expanding_them(
    tmp_path: Path,
) -> None:
    """With the limits lifted, validation of scalar series costs what the file holds: the
    rules compare scalars as scalars (a billion floats would need 8 GB under a 2 GB cap)."""
    data = billion_periods()
    data["peers"][0]["generation"]["min_kw"] = 1.0  # min <= max compared without expanding
    data["peers"][0]["buy_price_per_kwh"] = 0.05  # buy <= offer, too
    data["peers"][1]["flexible_load"] = [{"max_kw": 1, "price_per_kwh": 0.2}]
    file = write_yaml(tmp_path / "huge.yaml", data)

    done = validate_capped(
        file, P2PMARKET_MAX_PERIODS="2_000_000_000", P2PMARKET_MAX_PEER_PERIODS="4_000_000_000"
    )

    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout


def test_peer_periods_limit_names_both_counts() -> None:
    data = scenario()
    data["periods"] = 1_000
    data["peers"][2]["load_kw"] = 10
    error = refused(data, limits=Limits(max_peer_periods=2_999))

    assert error.field == "periods"
    assert "3 peers x 1,000 periods make 3,000 peer-periods" in str(error)
    assert "2,999" in str(error)
    assert Scenario.from_dict(data, limits=Limits(max_peer_periods=3_000)).periods == 1_000


def test_default_limits_admit_a_year_of_quarter_hours_and_refuse_one_more_period() -> None:
    data = scenario()
    data["peers"][2]["load_kw"] = 10
    data["periods"] = 100_000
    assert Scenario.from_dict(data).periods == 100_000
    data["periods"] = 100_001
    assert refused(data).field == "periods"


def test_direct_construction_refuses_the_same_size() -> None:
    grid = p2pmarket.core.scenario.Peer(
        id="grid", role="grid", generation=p2pmarket.core.scenario.Generation(max_kw=1.0)
    )
    with pytest.raises(ScenarioError, match=r"^periods: 100,001 is more than"):
        Scenario(periods=100_001, peers=(grid,))


def test_keyword_limits_are_kept_by_replace() -> None:
    """A scenario admitted with raised limits stays valid through `replace` (the CLI's
    `--design` and the settlement baseline go through it), but may not grow further."""
    data = scenario()
    data["peers"][2]["load_kw"] = 10
    data["periods"] = 20
    small = Limits(max_periods=20)
    s = Scenario.from_dict(data, limits=small)
    assert s.replace(design="community").design == "community"
    with pytest.raises(ScenarioError, match="more than the limit of 20 periods"):
        Scenario.from_dict(with_value("periods", 21, data), limits=small)
    with pytest.raises(ScenarioError, match="more than the limit of 100,000"):
        s.replace(periods=100_001)


def test_limits_from_the_environment() -> None:
    assert limits_from_environ({}) == Limits()
    raised = limits_from_environ(
        {"P2PMARKET_MAX_PERIODS": "200_000", "P2PMARKET_MAX_PEER_PERIODS": " 5 "}
    )
    assert raised == Limits(max_periods=200_000, max_peer_periods=5)
    for bad in ("lots", "0", "-3", "1.5"):
        with pytest.raises(OptionError, match=f"P2PMARKET_MAX_PERIODS: .*{bad!r}"):
            limits_from_environ({"P2PMARKET_MAX_PERIODS": bad})


def test_load_scenario_reads_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = scenario()
    data["peers"][2]["load_kw"] = 10
    data["periods"] = 120_000
    file = write_yaml(tmp_path / "big.yaml", data)
    with pytest.raises(ScenarioError, match="limit of 100,000 periods"):
        load_scenario(file)
    monkeypatch.setenv("P2PMARKET_MAX_PERIODS", "120000")
    assert load_scenario(file).periods == 120_000
    assert load_scenario(file, limits=Limits(max_periods=150_000)).periods == 120_000


def test_size_is_checked_before_any_csv_file_is_read(tmp_path: Path) -> None:
    data = with_value("peers.1.load_kw", {"csv": "absent.csv", "column": "x"}, billion_periods())
    with pytest.raises(ScenarioError, match=r"^periods: "):
        load_scenario(write_yaml(tmp_path / "s.yaml", data))


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "10"])
def test_limits_must_be_whole_numbers_of_at_least_one(value: Any) -> None:
    with pytest.raises(OptionError, match="max_periods"):
        Limits(max_periods=value)


# --- physical range -----------------------------------------------------------------------

# (dotted path, the largest magnitude allowed there)
RANGED = [
    pytest.param("peers.1.load_kw", MAX_POWER_KW, id="load"),
    pytest.param("peers.2.generation.max_kw", MAX_POWER_KW, id="generation-max"),
    pytest.param("peers.1.flexible_load.0.max_kw", MAX_POWER_KW, id="flexible-max"),
    pytest.param("peers.2.storage.power_kw", MAX_POWER_KW, id="storage-power"),
    pytest.param("peers.2.storage.capacity_kwh", MAX_ENERGY_KWH, id="storage-capacity"),
    pytest.param("peers.0.generation.offer_per_kwh", MAX_PRICE_PER_KWH, id="offer"),
    pytest.param("peers.1.flexible_load.0.price_per_kwh", MAX_PRICE_PER_KWH, id="flexible-price"),
    pytest.param("peers.0.export_fee", MAX_PRICE_PER_KWH, id="export-fee"),
    pytest.param("communities.0.intra_fee", MAX_PRICE_PER_KWH, id="intra-fee"),
    pytest.param("uniform_fee", MAX_PRICE_PER_KWH, id="uniform-fee"),
]


def field_of(path: str) -> str:
    """`peers.1.flexible_load.0.max_kw` -> `peers[P2].flexible_load[0].max_kw`."""
    ids = {"peers": ["grid", "P2", "P3"], "communities": ["C1"]}
    out, parts = "", path.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            label = ids.get(parts[i - 1], [])
            out += f"[{label[int(part)] if label else part}]"
        else:
            out += f".{part}" if out else part
    return out


@pytest.mark.parametrize(("path", "largest"), RANGED)
def test_numbers_beyond_the_physical_range_are_refused(path: str, largest: float) -> None:
    data = with_value(path, largest * 10)
    if path == "peers.0.generation.offer_per_kwh":
        data["peers"][0]["buy_price_per_kwh"] = None
    error = refused(data)

    assert error.field == field_of(path)
    assert f"{largest * 10:g}" in str(error)
    assert f"at most {largest:g}" in str(error)


@pytest.mark.parametrize(("path", "largest"), RANGED)
def test_numbers_at_the_limit_are_accepted(path: str, largest: float) -> None:
    data = with_value(path, largest)
    data["peers"][0]["generation"]["max_kw"] = MAX_POWER_KW  # enough for any load
    data["peers"][0]["buy_price_per_kwh"] = None
    if "flexible_load" in path and "price" not in path:
        data["peers"][1]["flexible_load"][0]["price_per_kwh"] = 0.0
    Scenario.from_dict(data)


def test_a_value_out_of_range_in_a_list_names_its_period() -> None:
    error = refused(with_value("peers.2.load_kw", [10, 1e300]))
    assert str(error).startswith("peers[P3].load_kw: 1e+300 kW in period 1 is out of range")


@pytest.mark.parametrize("offer", [-1e7, 1e7])
def test_negative_prices_are_bounded_too(offer: float) -> None:
    data = with_value("peers.2.generation.offer_per_kwh", offer)
    assert refused(data).field == "peers[P3].generation.offer_per_kwh"


def test_negative_buy_price_is_bounded() -> None:
    data = with_value("peers.0.buy_price_per_kwh", -1e7)
    assert refused(data).field == "peers[grid].buy_price_per_kwh"


def test_community_fee_is_bounded() -> None:
    data = scenario()
    data["communities"].append({"id": "C0", "members": ["grid"]})
    data["community_fees"] = [{"from": "C0", "to": "C1", "fee": [0.1, 1e7]}]
    error = refused(data)
    assert error.field == "community_fees[0].fee"
    assert "in period 1" in str(error)


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        pytest.param(0, "must be positive, got 0", id="zero"),
        pytest.param(-1, "must be positive, got -1", id="negative"),
        pytest.param(1e-6, "1e-06 h is out of range", id="below-one-second"),
        pytest.param(MAX_PERIOD_HOURS + 1, "8785 h is out of range", id="above-a-year"),
    ],
)
def test_period_hours_out_of_range_are_refused(hours: float, expected: str) -> None:
    error = refused(with_value("period_hours", hours))
    assert error.field == "period_hours"
    assert expected in str(error)


@pytest.mark.parametrize("hours", [1 / 3600, 0.25, 8784])
def test_period_hours_in_range_are_accepted(hours: float) -> None:
    assert Scenario.from_dict(with_value("period_hours", hours)).period_hours == hours


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param("peers.1.load_kw", float("inf"), id="inf"),
        pytest.param("peers.1.load_kw", float("-inf"), id="minus-inf"),
        pytest.param("peers.2.generation.max_kw", float("nan"), id="nan"),
        pytest.param("peers.2.storage.capacity_kwh", float("inf"), id="inf-capacity"),
        pytest.param("period_hours", float("nan"), id="nan-hours"),
    ],
)
def test_nan_and_infinity_are_refused_as_not_finite(path: str, value: float) -> None:
    error = refused(with_value(path, value))
    assert error.field == field_of(path)
    assert "expected a finite number" in str(error)


def test_a_grid_of_a_million_kw_is_within_range() -> None:
    """The random markets of the tests and built-in generators use a 1e6 kW grid."""
    assert Scenario.from_dict(with_value("peers.0.generation.max_kw", 1e6)).peers[0].generation


@pytest.mark.parametrize("name", p2pmarket.cases.names())
def test_every_builtin_case_is_within_the_limits(name: str) -> None:
    case = p2pmarket.cases.load(name)
    assert Scenario.from_dict(case.to_dict()) == case


# --- messages -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "typo", "suggestion"),
    [
        pytest.param("", "period", "periods", id="top-level"),
        pytest.param("peers.1", "lod_kw", "load_kw", id="peer"),
        pytest.param("peers.2.generation", "max_kW", "max_kw", id="generation"),
        pytest.param("peers.2.storage", "capacity", "capacity_kwh", id="storage"),
        pytest.param("peers.1.flexible_load.0", "price", "price_per_kwh", id="flexible"),
        pytest.param("communities.0", "member", "members", id="community"),
    ],
)
def test_unknown_field_suggests_the_closest_one(path: str, typo: str, suggestion: str) -> None:
    data = scenario()
    node: Any = data
    for part in path.split(".") if path else []:
        node = node[int(part)] if part.isdigit() else node[part]
    node[typo] = 1
    error = refused(data)

    assert error.field == (f"{field_of(path)}.{typo}" if path else typo)
    assert str(error).endswith(
        f"unknown field (refused, not ignored); did you mean {suggestion!r}?"
    )


def test_unknown_field_in_a_community_fee_suggests_from() -> None:
    data = scenario()
    data["communities"].append({"id": "C0", "members": ["grid"]})
    data["community_fees"] = [{"from_": "C0", "to": "C1", "fee": 0.1}]
    assert str(refused(data)).endswith("did you mean 'from'?")


def test_unknown_field_with_no_close_match_lists_the_fields() -> None:
    error = refused(with_value("peers.2.storage.colour", "red"))
    assert "expected one of capacity_kwh, charge_efficiency" in str(error)


def test_unknown_field_in_a_directly_built_part_suggests_too() -> None:
    with pytest.raises(ScenarioError, match="did you mean 'max_kw'"):
        p2pmarket.core.scenario.Generation(max_kv=1.0)


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0 periods"), (1, "1 period"), (2, "2 periods"), (35_040, "35,040 periods")]
)
def test_plural(n: int, text: str) -> None:
    assert plural(n, "period") == text
    assert plural(1, "community", "communities") == "1 community"
    assert plural(3, "community", "communities") == "3 communities"


def test_one_value_for_two_periods_is_singular() -> None:
    error = refused(with_value("peers.2.load_kw", [10]))
    assert str(error) == "peers[P3].load_kw: 1 value given, expected 2 (one per period)"


# --- negative flexible prices ---------------------------------------------------------------


def test_negative_flexible_price_that_can_never_be_served_is_refused() -> None:
    error = refused(with_value("peers.1.flexible_load.0.price_per_kwh", [0.08, -0.01]))
    assert error.field == "peers[P2].flexible_load[0].price_per_kwh"
    assert "-0.01 is negative in period 1" in str(error)
    assert "never be served" in str(error)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param("peers.2.generation.offer_per_kwh", -0.05, id="negative-offer"),
        pytest.param("peers.2.generation.min_kw", 5, id="must-run"),
        pytest.param("peers.0.buy_price_per_kwh", -0.02, id="negative-buy-price"),
    ],
)
def test_negative_flexible_price_is_accepted_where_energy_can_cost_less(
    path: str, value: float
) -> None:
    data = with_value("peers.1.flexible_load.0.price_per_kwh", -0.01)
    Scenario.from_dict(with_value(path, value, data))


def test_negative_flexible_price_is_served_when_energy_is_cheaper_still() -> None:
    """What the accepted case means: with a generator paid to produce (offer -0.05), a
    block valued at -0.01 is served (it is worth 0.04 per kWh to the market)."""
    data = with_value("peers.1.flexible_load.0.price_per_kwh", -0.01)
    data = with_value("peers.2.generation.offer_per_kwh", -0.05, data)
    data["peers"][2].pop("storage")
    data["peers"][0]["buy_price_per_kwh"] = None  # no better use for the surplus
    data["peers"][2]["generation"]["max_kw"] = 100
    result = p2pmarket.clear(Scenario.from_dict(data))
    served = result.dispatch.set_index("peer").loc["P2", "flexible_load_kw"]
    assert served.tolist() == pytest.approx([5.0, 5.0])


# --- the documentation runs ---------------------------------------------------------------

DOC = Path(__file__).resolve().parents[1] / "docs" / "scenario-limits.md"


def test_the_python_examples_of_the_limits_document_run() -> None:
    blocks = DOC.read_text(encoding="utf-8").split("```python\n")[1:]
    assert blocks
    for block in blocks:
        exec(compile(block.split("```", 1)[0], str(DOC), "exec"), {})


def test_the_console_example_of_the_limits_document_is_what_validate_prints(
    tmp_path: Path,
) -> None:
    text = DOC.read_text(encoding="utf-8")
    expected = text.split("$ p2pmarket validate huge.yaml\n", 1)[1].split("\n", 1)[0]
    done = validate_capped(write_yaml(tmp_path / "huge.yaml", billion_periods()))
    assert done.stderr == expected + "\n"


# --- structure: text lengths, nesting, numbers, peers (issue 12, item 4) ------------------


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("name", 200),
        ("currency", 200),
        ("description", 10_000),
        ("peers.1.id", 200),
        ("communities.0.id", 200),
        ("communities.0.members.0", 200),
    ],
)
def test_texts_longer_than_their_limit_are_refused_in_one_short_line(path: str, limit: int) -> None:
    if path in {"name", "currency", "description", "communities.0.id"}:
        Scenario.from_dict(with_value(path, "a" * limit))  # at the limit: accepted
    error = refused(with_value(path, "a" * (limit + 1)))
    assert f"more than the limit of {limit:,} characters" in str(error)
    assert len(str(error)) < 300


def test_a_million_character_name_is_refused_quickly() -> None:
    error = refused(with_value("name", "a" * 1_000_000))
    assert error.field == "name"
    assert "1,000,000 characters" in str(error)
    assert len(str(error)) < 300


def test_an_id_with_control_characters_is_named_by_position() -> None:
    data = with_value("peers.2.generation.min_kw", 60)
    data = with_value("peers.2.id", "P3\n\x1b[31m", data)
    data["communities"][0]["members"][1] = "P3\n\x1b[31m"
    error = refused(data)
    assert error.field == "peers[2].generation.min_kw"


def test_nesting_deeper_than_the_limit_is_refused_without_recursing() -> None:
    deep: Any = 1.0
    for _ in range(100_000):  # far beyond Python's recursion limit
        deep = [deep]
    error = refused(with_value("peers.1.load_kw", deep))
    assert "nest deeper than the limit of 20 levels" in str(error)


@pytest.mark.parametrize("value", [10**20, 10**5000, -(10**400)], ids=["20", "5000", "-400"])
def test_huge_whole_numbers_are_refused_in_one_short_line(value: int) -> None:
    error = refused(with_value("peers.1.load_kw", value))
    assert error.field == "peers[P2].load_kw"
    assert len(str(error)) < 200


def test_huge_periods_is_named_by_its_size() -> None:
    error = refused(with_value("periods", 10**5000))
    assert "periods: a number of about 5,001 digits is more than the limit" in str(error)


def test_peers_beyond_the_limit_are_refused_before_validation() -> None:
    data = scenario()
    data["peers"] = data["peers"] + [{"id": f"C{i}", "role": "consumer"} for i in range(3)]
    error = refused(data, limits=Limits(max_peers=5))
    assert error.field == "peers"
    assert "6 peers are more than the limit of 5" in str(error)
    assert "P2PMARKET_MAX_PEERS" in str(error)
    Scenario.from_dict(data, limits=Limits(max_peers=6))


def test_the_peers_limit_comes_from_the_environment() -> None:
    assert limits_from_environ({"P2PMARKET_MAX_PEERS": "200_000"}).max_peers == 200_000
    with pytest.raises(OptionError, match="P2PMARKET_MAX_PEERS"):
        limits_from_environ({"P2PMARKET_MAX_PEERS": "9" * 40})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a: &x [1, 2]\nb: *x\n", "anchor or alias", id="alias"),
        pytest.param("periods: " + "9" * 5000 + "\n", "number of 5,000 characters", id="digits"),
        pytest.param("x: " + "[" * 30 + "]" * 30 + "\n", "nesting deeper than 20", id="deep"),
        pytest.param("x: !!python/object:os.system ls\n", "the YAML tag", id="tag"),
        pytest.param("<<: {name: y}\n", "merge key", id="merge"),
        pytest.param("a: 1\n---\nb: 2\n", "a second YAML document", id="two-documents"),
        pytest.param("? [a, b]\n: 1\n", "a key that is a list", id="list-key"),
        pytest.param("x: 2001-13-45\n", "'2001-13-45'", id="no-date"),
    ],
)
def test_yaml_that_could_hang_or_crash_is_refused_in_one_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    file = tmp_path / "s.yaml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(file)
    assert caught.value.field == "file"
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("[" * 100_000 + "]" * 100_000, "nesting deeper", id="deep"),
        pytest.param('{"periods": ' + "9" * 5000 + "}", "4,300 digits", id="digits"),
        pytest.param('{"name": "a", "name": "b"}', "'name' is given twice", id="duplicate"),
    ],
)
def test_json_that_could_crash_is_refused_in_one_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    file = tmp_path / "s.json"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError, match=expected):
        load_scenario(file)


def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    levels = "".join(f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 9)}]\n" for i in range(1, 10))
    file = tmp_path / "bomb.yaml"
    file.write_text(f"periods: 1\nb0: &b0 [x, x, x, x, x, x, x, x, x]\n{levels}", "utf-8")
    with pytest.raises(ScenarioError, match="line 2"):
        load_scenario(file)


def test_a_byte_order_mark_is_allowed_and_invalid_utf8_refused(tmp_path: Path) -> None:
    file = write_yaml(tmp_path / "s.yaml", scenario())
    file.write_bytes(b"\xef\xbb\xbf" + file.read_bytes())
    assert load_scenario(file).periods == 2
    file.write_bytes(file.read_bytes().replace(b"periods", b"peri\xffods"))
    with pytest.raises(ScenarioError, match="is not UTF-8 text"):
        load_scenario(file)


def test_a_file_over_its_size_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    file = tmp_path / "s.yaml"
    with file.open("wb") as handle:
        handle.truncate(10_000_001)  # sparse: nothing to parse, only a size
    with pytest.raises(ScenarioError, match="larger than the limit of 10,000,000 bytes"):
        load_scenario(file)


def test_the_console_example_of_an_alias_is_what_validate_prints(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    expected = text.split("$ p2pmarket validate bomb.yaml\n", 1)[1].split("\n", 1)[0]
    file = tmp_path / "bomb.yaml"
    file.write_text("periods: 1\npeers: []\nbomb: &a [x, x]\nmore: *a\n", encoding="utf-8")
    done = validate_capped(file)
    assert done.stderr == expected + "\n"


def test_a_csv_file_wider_than_the_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    """100,000 columns of one row once took pandas 23 s to read."""
    header = "x," + ",".join(f"c{i}" for i in range(100_000))
    (tmp_path / "wide.csv").write_text(header + "\n1\n2\n", encoding="utf-8")
    data = with_value("peers.1.load_kw", {"csv": "wide.csv", "column": "x"})
    with pytest.raises(ScenarioError, match="100,001 columns or more, more than the limit"):
        load_scenario(write_yaml(tmp_path / "s.yaml", data))
