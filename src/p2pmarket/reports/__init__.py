"""Reports of a cleared market (SPEC C7): figures, self-contained HTML pages, table exports.

An edge of the house: it reads results and writes files; the core never imports it. Names
are imported on first use: `p2pmarket.reports.tables` alone does not load matplotlib.

- Figures (`matplotlib.figure.Figure`, Agg canvas, no pyplot): `trade_network_figure`,
  `generation_load_figure`, `imports_exports_figure`, `state_of_charge_figure`,
  `price_figure`, `bills_figure`, `design_comparison_figure`; `standard_figures` gives
  every one that applies to a result. `peer_colours` / `peer_styles` give each peer the one
  look it has in every figure.
- HTML: `write_report(result, out_dir)` writes `report.html`; `write_paper_reports`
  a report per paper case and an index. Both take `on_step(description)`, called before
  each section and figure; `report_steps` / `paper_report_steps` list the steps up front
  (for a progress bar). `priced=` gives the clearing whose prices the bills charge.
- Large markets (past `scale.PER_PEER` peers) are drawn by community, every figure of a
  bounded size (`p2pmarket.reports.scale`).
- Long horizons (a week or more, `is_long`): the report draws `daily_energy_figure`,
  `price_heatmap_figure`, `monthly_shares_figure` (`monthly_shares` its data) and
  `savings_figure` instead of a bar or a cell per period (`p2pmarket.reports.year`,
  docs/year-report.md).
- Sweeps: `kpi_figure(table)` and `write_sweep_report(table, out_dir)` for the table of
  `p2pmarket.app.sweep` (`p2pmarket.reports.sweep`, docs/sweeps.md).
- Tables: `result_tables`, `write_tables(tables, out, format="csv" | "parquet")`,
  `read_tables`.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from p2pmarket.io.tables import (
        FORMATS,
        peer_totals,
        read_table,
        read_tables,
        result_tables,
        write_table,
        write_tables,
    )
    from p2pmarket.reports.figures import (
        BILL_COLUMNS,
        bills_figure,
        design_comparison_figure,
        figure_steps,
        generation_load_figure,
        imports_exports_figure,
        price_figure,
        standard_figures,
        state_of_charge_figure,
    )
    from p2pmarket.reports.html import (
        REPORT_NAME,
        format_value,
        paper_report_steps,
        report_html,
        report_steps,
        write_paper_reports,
        write_report,
    )
    from p2pmarket.reports.network import busiest_period, network_layout, trade_network_figure
    from p2pmarket.reports.style import PALETTE, PeerStyle, figure_png, peer_colours, peer_styles
    from p2pmarket.reports.sweep import kpi_figure, sweep_report_html, write_sweep_report
    from p2pmarket.reports.year import (
        daily_energy_figure,
        is_long,
        monthly_shares,
        monthly_shares_figure,
        price_heatmap_figure,
        savings_figure,
    )

__all__ = [
    "BILL_COLUMNS",
    "FORMATS",
    "PALETTE",
    "REPORT_NAME",
    "PeerStyle",
    "bills_figure",
    "busiest_period",
    "daily_energy_figure",
    "design_comparison_figure",
    "figure_png",
    "figure_steps",
    "format_value",
    "generation_load_figure",
    "imports_exports_figure",
    "is_long",
    "kpi_figure",
    "monthly_shares",
    "monthly_shares_figure",
    "network_layout",
    "paper_report_steps",
    "peer_colours",
    "peer_styles",
    "peer_totals",
    "price_figure",
    "price_heatmap_figure",
    "read_table",
    "read_tables",
    "report_html",
    "report_steps",
    "result_tables",
    "savings_figure",
    "standard_figures",
    "state_of_charge_figure",
    "sweep_report_html",
    "trade_network_figure",
    "write_paper_reports",
    "write_report",
    "write_sweep_report",
    "write_table",
    "write_tables",
]

_HOME = {
    "figures": (
        "BILL_COLUMNS",
        "bills_figure",
        "design_comparison_figure",
        "figure_steps",
        "generation_load_figure",
        "imports_exports_figure",
        "price_figure",
        "standard_figures",
        "state_of_charge_figure",
    ),
    "html": (
        "REPORT_NAME",
        "format_value",
        "paper_report_steps",
        "report_html",
        "report_steps",
        "write_paper_reports",
        "write_report",
    ),
    "network": ("busiest_period", "network_layout", "trade_network_figure"),
    "sweep": ("kpi_figure", "sweep_report_html", "write_sweep_report"),
    "year": (
        "daily_energy_figure",
        "is_long",
        "monthly_shares",
        "monthly_shares_figure",
        "price_heatmap_figure",
        "savings_figure",
    ),
    "style": ("PALETTE", "PeerStyle", "figure_png", "peer_colours", "peer_styles"),
    "tables": (
        "FORMATS",
        "peer_totals",
        "read_table",
        "read_tables",
        "result_tables",
        "write_table",
        "write_tables",
    ),
}
_MODULE_OF = {name: module for module, names in _HOME.items() for name in names}


def __getattr__(name: str) -> Any:
    """Names are imported on first use, so that `p2pmarket.reports.tables` (wanted by the
    command line at start-up) does not pull matplotlib in."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'p2pmarket.reports' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"p2pmarket.reports.{_MODULE_OF[name]}"), name)


def __dir__() -> list[str]:
    """What `dir(p2pmarket.reports)` and tab completion show: the names above, though they are
    imported only on first use."""
    return sorted({*__all__, *_HOME})
