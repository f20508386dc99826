"""CSV references stay inside the scenario's directory (issue 12, item 5;
docs/scenario-limits.md, "CSV files").

`{csv: FILE}` once read any file on the machine and echoed its content into the error
(`{csv: /proc/self/environ}` printed the environment). Now an absolute path, `..`, a symbolic
link (to a file or a directory) that leads outside, and /proc/self/environ are each refused
with one line that holds none of the file's content; a file inside the directory is read; an
explicit `csv_root=` allows a wider root; a scenario given as text reads no file unless it is
given a directory; and what a message shows of a file is a short excerpt, escaped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from p2pmarket import Scenario
from p2pmarket.errors import ScenarioError
from p2pmarket.io.scenario_files import load_scenario, parse_scenario

SECRET = "TOP-SECRET-CONTENT-4711"


def scenario(csv: str) -> dict[str, Any]:
    """A valid 2-peer, 2-period market whose consumer's load comes from `csv`, column `x`."""
    return {
        "periods": 2,
        "peers": [
            {"id": "grid", "role": "grid", "generation": {"max_kw": 100, "offer_per_kwh": 0.1}},
            {"id": "home", "role": "consumer", "load_kw": {"csv": csv, "column": "x"}},
        ],
    }


def write_scenario(folder: Path, csv: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "s.yaml"
    file.write_text(yaml.safe_dump(scenario(csv)), encoding="utf-8")
    return file


def write_csv(path: Path, first: str = "3") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"x,{SECRET}\n{first},1\n4,1\n", encoding="utf-8")
    return path


def refused(file: Path, **kwargs: Any) -> str:
    """The one-line refusal of loading `file`; it names the CSV field and shows no content."""
    with pytest.raises(ScenarioError) as caught:
        load_scenario(file, **kwargs)
    message = str(caught.value)
    assert caught.value.field == "peers[home].load_kw.csv", message
    assert "\n" not in message
    assert SECRET not in message
    return message


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A CSV file outside the scenario's directory (`tmp_path/scenario`)."""
    return write_csv(tmp_path / "elsewhere" / "load.csv")


def test_a_file_inside_the_directory_is_read(tmp_path: Path) -> None:
    write_csv(tmp_path / "scenario" / "data" / "load.csv")
    loaded = load_scenario(write_scenario(tmp_path / "scenario", "data/load.csv"))
    assert loaded.peers[1].load_kw == (3.0, 4.0)


def test_an_absolute_path_is_refused(tmp_path: Path, outside: Path) -> None:
    message = refused(write_scenario(tmp_path / "scenario", str(outside)))
    assert "is an absolute path" in message


def test_an_absolute_path_into_the_directory_is_refused_too(tmp_path: Path) -> None:
    inside = write_csv(tmp_path / "scenario" / "load.csv")
    assert "is an absolute path" in refused(write_scenario(tmp_path / "scenario", str(inside)))


@pytest.mark.parametrize("name", ["../elsewhere/load.csv", "data/../../elsewhere/load.csv"])
def test_dot_dot_is_refused(tmp_path: Path, outside: Path, name: str) -> None:
    assert "(..)" in refused(write_scenario(tmp_path / "scenario", name))


def test_a_symbolic_link_to_a_file_outside_is_refused(tmp_path: Path, outside: Path) -> None:
    file = write_scenario(tmp_path / "scenario", "load.csv")
    (tmp_path / "scenario" / "load.csv").symlink_to(outside)
    assert "resolves outside the scenario's directory" in refused(file)


def test_a_symbolic_link_to_a_directory_outside_is_refused(tmp_path: Path, outside: Path) -> None:
    file = write_scenario(tmp_path / "scenario", "data/load.csv")
    (tmp_path / "scenario" / "data").symlink_to(outside.parent, target_is_directory=True)
    assert "resolves outside the scenario's directory" in refused(file)


def test_a_symbolic_link_inside_the_directory_is_followed(tmp_path: Path) -> None:
    write_csv(tmp_path / "scenario" / "real" / "load.csv")
    (tmp_path / "scenario" / "data").symlink_to(tmp_path / "scenario" / "real")
    loaded = load_scenario(write_scenario(tmp_path / "scenario", "data/load.csv"))
    assert loaded.peers[1].load_kw == (3.0, 4.0)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_proc_self_environ_is_refused_without_echoing_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("P2PMARKET_TEST_SECRET", SECRET)
    message = refused(write_scenario(tmp_path / "scenario", "/proc/self/environ"))
    assert "is an absolute path" in message
    assert "P2PMARKET_TEST_SECRET" not in message


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_proc_self_environ_under_an_explicit_root_shows_no_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even where the caller allows the whole machine, the message shows no variable: the
    header is not listed, only the number of columns (and a close match, if any)."""
    monkeypatch.setenv("P2PMARKET_TEST_SECRET", SECRET)
    file = write_scenario(tmp_path / "scenario", "/proc/self/environ")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(file, csv_root="/")
    message = str(caught.value)
    assert "\n" not in message
    assert SECRET not in message
    assert "P2PMARKET_TEST_SECRET" not in message
    assert "PATH=" not in message


def test_an_explicit_root_allows_a_file_outside_the_directory(
    tmp_path: Path, outside: Path
) -> None:
    for name in (str(outside), "../elsewhere/load.csv"):
        loaded = load_scenario(write_scenario(tmp_path / "scenario", name), csv_root=tmp_path)
        assert loaded.peers[1].load_kw == (3.0, 4.0)


def test_an_explicit_root_still_confines(tmp_path: Path, outside: Path) -> None:
    file = write_scenario(tmp_path / "scenario", "../elsewhere/load.csv")
    message = refused(file, csv_root=tmp_path / "scenario")
    assert "resolves outside csv_root" in message


def test_a_fifo_is_refused_not_waited_for(tmp_path: Path) -> None:
    file = write_scenario(tmp_path / "scenario", "load.csv")
    os.mkfifo(tmp_path / "scenario" / "load.csv")
    assert "not a regular file" in refused(file)


# --- a scenario given as text reads no file ------------------------------------------------


def test_a_scenario_given_as_text_reads_no_file(tmp_path: Path) -> None:
    write_csv(tmp_path / "load.csv")
    text = yaml.safe_dump(scenario("load.csv"))
    with pytest.raises(ScenarioError, match="given as text") as caught:
        parse_scenario(text)
    assert caught.value.field == "peers[home].load_kw.csv"
    loaded = parse_scenario(text, base_dir=tmp_path)
    assert loaded.peers[1].load_kw == (3.0, 4.0)


def test_a_scenario_given_as_text_with_a_directory_is_confined_to_it(
    tmp_path: Path, outside: Path
) -> None:
    with pytest.raises(ScenarioError, match="absolute path"):
        parse_scenario(yaml.safe_dump(scenario(str(outside))), base_dir=tmp_path / "scenario")


def test_from_dict_reads_no_file(tmp_path: Path) -> None:
    write_csv(tmp_path / "load.csv")
    with pytest.raises(ScenarioError, match="read only by load_scenario or parse_scenario"):
        Scenario.from_dict(scenario(str(tmp_path / "load.csv")))


# --- what a message shows of a file ----------------------------------------------------------


def test_a_bad_cell_is_shown_as_a_short_escaped_excerpt(tmp_path: Path) -> None:
    write_csv(tmp_path / "load.csv", first="\x1b[31m" + SECRET * 5)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write_scenario(tmp_path, "load.csv"))
    message = str(caught.value)
    assert "\x1b" not in message
    assert "\\x1b[31m" in message
    assert SECRET * 2 not in message
    excerpt = message.split(" is ", 1)[1].split(", not a finite number", 1)[0]
    assert len(excerpt) <= 40 + len("\\x1b") + len("''...")


def test_a_missing_column_names_a_close_one_not_the_header(tmp_path: Path) -> None:
    (tmp_path / "load.csv").write_text(f"xx,{SECRET}\n3,1\n4,1\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write_scenario(tmp_path, "load.csv"))
    message = str(caught.value)
    assert "(2 columns; did you mean 'xx'?)" in message
    assert SECRET not in message
