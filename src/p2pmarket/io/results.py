"""Writing results: the files of `p2pmarket run --out DIR` and `p2pmarket paper --out DIR`.

Every file is written through a temporary file and a rename, and nothing is written before
the whole result exists, so a failed run leaves no partial output.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from p2pmarket.app.paper import PaperCheck
from p2pmarket.core.kpis import Kpis
from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import Scenario
from p2pmarket.core.settlement import Settlement
from p2pmarket.io.atomic import write_text_atomic
from p2pmarket.io.scenario_directory import series_files
from p2pmarket.io.scenario_files import document_yaml, scenario_yaml
from p2pmarket.io.tables import csv_text

__all__ = ["scenario_texts", "write_comparison", "write_paper_tables", "write_run"]


def write_run(
    result: ClearingResult,
    out: Path,
    settlement: Settlement | None = None,
    kpis: Kpis | None = None,
    *,
    prices: pd.DataFrame | None = None,
) -> list[Path]:
    """`scenario.yaml` (the scenario as cleared, `scenario_texts`), `summary.json`,
    `dispatch.csv`, `trades.csv`, `prices.csv` (`prices` when given: the prices the bills use,
    default the result's own), and with a settlement `bills.csv`, `settlement.csv` (bilateral
    trades with their prices) and `kpis.json`, in `out`."""
    texts = {
        **scenario_texts(result.scenario),
        "summary.json": json.dumps(result.summary().to_dict(), indent=2) + "\n",
        "dispatch.csv": csv_text(result.dispatch),
        "trades.csv": csv_text(result.trades),
        "prices.csv": csv_text(result.prices if prices is None else prices),
    }
    if settlement is not None:
        texts["bills.csv"] = csv_text(settlement.bills)
        texts["settlement.csv"] = csv_text(settlement.trades)
    if kpis is not None:
        texts["kpis.json"] = json.dumps(kpis.to_dict(), indent=2) + "\n"
    return _write_all(texts, out)


INLINE_MAX_PERIODS = 168
"""A run's copy of a scenario of up to this many periods (a week of hours) has its series
inline in `scenario.yaml`; a longer one's are in CSV files under `SERIES_FOLDER` (a year of
100 households inline is 26 MB of YAML and half a minute of writing)."""
SERIES_FOLDER = "scenario-series"


def scenario_texts(scenario: Scenario) -> dict[str, str]:
    """The files of a run's copy of `scenario`, by name: `scenario.yaml`, with its series
    inline up to `INLINE_MAX_PERIODS` periods, else in `SERIES_FOLDER/*.csv` beside it;
    `p2pmarket.load_scenario` reads either back as the same scenario."""
    if scenario.periods <= INLINE_MAX_PERIODS:
        return {"scenario.yaml": scenario_yaml(scenario)}
    document, series = series_files(scenario, SERIES_FOLDER)
    return {"scenario.yaml": document_yaml(document), **series}


def write_comparison(table: pd.DataFrame, bills: pd.DataFrame, out: Path) -> list[Path]:
    """`compare.csv` (one row per market) and `compare_bills.csv` (one row per market and peer)."""
    texts = {
        "compare.csv": csv_text(table),
        "compare_bills.csv": csv_text(bills),
    }
    return _write_all(texts, out)


def write_paper_tables(
    checks: Iterable[PaperCheck], designs: pd.DataFrame, out: Path
) -> list[Path]:
    """`paper.csv` (figure by figure) and `designs.csv` (each case under each design)."""
    table = pd.DataFrame(
        [
            {
                "case": c.case,
                "quantity": c.quantity,
                "paper": c.paper,
                "paper_says": c.paper_says,
                "ours": c.ours,
                "deviation": c.deviation,
                "matches": c.matches,
                "note": c.note,
            }
            for c in checks
        ]
    )
    texts = {"paper.csv": csv_text(table), "designs.csv": csv_text(designs)}
    return _write_all(texts, out)


def _write_all(texts: dict[str, str], out: Path) -> list[Path]:
    paths = [out / name for name in texts]
    for path, text in zip(paths, texts.values(), strict=True):
        write_text_atomic(path, text)
    return paths
