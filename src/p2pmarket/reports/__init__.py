"""Reports of a cleared market (SPEC C7): figures, self-contained HTML pages, table exports.

An edge of the house: it reads results and writes files; the core never imports it. Names
are imported on first use: `p2pmarket.reports.tables` alone does not load matplotlib.

- Figures (`matplotlib.figure.Figure`, Agg canvas, no pyplot): `trade_network_figure`,
  `generation_load_figure`, `imports_exports_figure`, `state_of_charge_figure`,
  `price_figure`, `bills_figure`, `design_comparison_figure`; `standard_figures` gives
  every one that applies to a result. `peer_colours` / `peer_styles` give each peer the one
  look it has in every figure.
- HTML: `write_report(result, out_dir)` writes `report.html`; `write_paper_reports`
  a report per paper case and an index.
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
        generation_load_figure,
        imports_exports_figure,
        price_figure,
        standard_figures,
        state_of_charge_figure,
    )
    from p2pmarket.reports.html import (
        REPORT_NAME,
        format_value,
        report_html,
        write_paper_reports,
        write_report,
    )
    from p2pmarket.reports.network import busiest_period, network_layout, trade_network_figure
    from p2pmarket.reports.style import PALETTE, PeerStyle, figure_png, peer_colours, peer_styles

__all__ = [
    "BILL_COLUMNS",
    "FORMATS",
    "PALETTE",
    "REPORT_NAME",
    "PeerStyle",
    "bills_figure",
    "busiest_period",
    "design_comparison_figure",
    "figure_png",
    "format_value",
    "generation_load_figure",
    "imports_exports_figure",
    "network_layout",
    "peer_colours",
    "peer_styles",
    "peer_totals",
    "price_figure",
    "read_table",
    "read_tables",
    "report_html",
    "result_tables",
    "standard_figures",
    "state_of_charge_figure",
    "trade_network_figure",
    "write_paper_reports",
    "write_report",
    "write_table",
    "write_tables",
]

_HOME = {
    "figures": (
        "BILL_COLUMNS",
        "bills_figure",
        "design_comparison_figure",
        "generation_load_figure",
        "imports_exports_figure",
        "price_figure",
        "standard_figures",
        "state_of_charge_figure",
    ),
    "html": ("REPORT_NAME", "format_value", "report_html", "write_paper_reports", "write_report"),
    "network": ("busiest_period", "network_layout", "trade_network_figure"),
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
