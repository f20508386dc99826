"""`p2pmarket run <feeder case> --out DIR --report` (issue 17, "Done when"): the feeder
figures, the price decomposition and `feeder_validation.csv`."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from p2pmarket.cli.main import app
from p2pmarket.io.pandapower_feeder import VALIDATION_COLUMNS


def test_run_writes_the_feeder_outputs(tmp_path: Path) -> None:
    pytest.importorskip("pandapower")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["run", "seventeen-peer-feeder", "--out", str(out), "--report"]
    )
    assert result.exit_code == 0, result.output
    for name in ("feeder.png", "feeder_comparison.png", "feeder_prices.csv",
                 "feeder_validation.csv", "feeder_buses.csv", "feeder_branches.csv",
                 "feeder_binding.csv", "report.html"):  # fmt: skip
        assert (out / name).is_file(), name
    assert (out / "feeder.png").read_bytes().startswith(b"\x89PNG")
    validation = pd.read_csv(out / "feeder_validation.csv")
    assert tuple(validation.columns) == VALIDATION_COLUMNS
    assert list(validation["period"]) == list(range(24))
    prices = pd.read_csv(out / "feeder_prices.csv")
    total = prices[["energy_per_kwh", "congestion_per_kwh", "voltage_per_kwh"]].sum(axis=1)
    np.testing.assert_allclose(total, prices["price_per_kwh"], atol=1e-9)
    assert not pd.read_csv(out / "feeder_binding.csv").empty
    page = (out / "report.html").read_text()
    assert 'id="feeder"' in page and "figure-feeder-comparison" in page


def test_a_feeder_that_cannot_carry_the_loads_is_one_line_exit_1(tmp_path: Path) -> None:
    """A band too narrow for the fixed loads (vmin 0.9995 pu under a 1.0 pu substation): the
    market is infeasible, and the one line names the lower voltage limit, a bus and a period
    where the unconstrained market's LinDistFlow voltage is indeed under the band."""
    data = files("p2pmarket.cases") / "data"
    for name in ("seventeen-peer-feeder.yaml", "seventeen-peer-feeder.csv"):
        (tmp_path / name).write_text((data / name).read_text())
    text = (tmp_path / "seventeen-peer-feeder.yaml").read_text()
    (tmp_path / "narrow.yaml").write_text(text.replace("vmin_pu: 0.95", "vmin_pu: 0.9995"))
    result = CliRunner().invoke(app, ["run", str(tmp_path / "narrow.yaml")])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    found = re.search(
        r"in period (\d+): the voltage at bus '([^']+)' cannot be kept above vmin_pu", lines[0]
    )
    assert found, lines[0]
    period, bus = int(found[1]), found[2]
    loose = CliRunner().invoke(
        app, ["run", str(tmp_path / "seventeen-peer-feeder.yaml"), "--out", str(tmp_path / "o")]
    )
    assert loose.exit_code == 0, loose.output
    buses = pd.read_csv(tmp_path / "o" / "feeder_buses.csv")
    at = buses[(buses.period == period) & (buses.bus == bus)]
    assert float(at["vm_pu"].iloc[0]) < 0.9995
