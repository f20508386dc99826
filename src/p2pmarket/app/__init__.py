"""The application layer: use-cases shared by the command line, the HTTP service and sweeps.

- `clearing.clear`: clear a market (plans windows, picks the method and the runner).
- `run`: `run_market` (clear, settle, KPIs), `Clearings` (which clearings a settlement needs,
  each solved once), `settle_result`.
- `compare`: markets side by side. `paper`: the paper's cases reproduced.
- `record`: a settled run appended to the ledger.

Edges (CLI, service) call these and render what they return; none of them orchestrates
clearing, settlement and recording on its own.
"""

from p2pmarket.app.clearing import clear
from p2pmarket.app.run import Clearings, MarketRun, run_market, settle_result

__all__ = ["Clearings", "MarketRun", "clear", "run_market", "settle_result"]
