"""Every example in the README runs: the Python blocks execute, the YAML example is valid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import p2pmarket
from p2pmarket.core.scenario import Peer

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("code", blocks("python"))
def test_python_examples_run(code: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(code, "README.md", "exec"), {})
    assert "28.456" in capsys.readouterr().out


def test_scenario_example_is_complete_and_valid() -> None:
    (text,) = blocks("yaml")
    data = yaml.safe_load(text)
    scenario = p2pmarket.Scenario.from_dict(data)
    # Every optional part is present, so the example shows every field.
    assert scenario.peers[-1].storage is not None
    assert any(p.flexible_load for p in scenario.peers)
    assert any(p.buy_price_per_kwh is not None for p in scenario.peers)
    assert scenario.community_fees
    for design in ("p2p", "community", "hybrid"):
        assert p2pmarket.clear(scenario, design=design).status == "optimal"


def test_documented_field_names_match_the_schema() -> None:
    """Each key of the YAML example is a field of the schema (and vice versa for peers)."""
    (text,) = blocks("yaml")
    data = yaml.safe_load(text)
    assert set(data) == set(p2pmarket.Scenario.model_fields)
    peer_keys = set().union(*(p.keys() for p in data["peers"]))
    assert peer_keys == set(Peer.model_fields)
