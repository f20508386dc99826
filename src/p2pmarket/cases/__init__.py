"""Built-in scenarios: the cases of Moreno et al. 2021 (SPEC C6).

`names()` lists them, `load(name)` returns a validated `Scenario`, `path(name)` the file it
is read from (a YAML file shipped with the package).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from p2pmarket.core.scenario import Scenario
from p2pmarket.errors import ScenarioError
from p2pmarket.io.scenario_files import load_scenario

__all__ = ["load", "names", "path"]


def names() -> tuple[str, ...]:
    """Names of the built-in scenarios, in the order of the paper."""
    folder = resources.files(__name__) / "data"
    found = sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))
    order = {"five": 0, "seventeen": 1}
    return tuple(sorted(found, key=lambda n: (order.get(n.split("-")[0], 2), n)))


def path(name: str) -> Path:
    """The YAML file of a built-in scenario."""
    if name not in names():
        raise ScenarioError("case", f"unknown case {name!r}; built-in cases: {', '.join(names())}")
    return Path(str(resources.files(__name__) / "data" / f"{name}.yaml"))


def load(name: str) -> Scenario:
    """A built-in scenario by name, e.g. `load("five-peer-case-2")`."""
    return load_scenario(path(name))
