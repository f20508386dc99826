"""The electrical layer (SPEC C12): a radial low-voltage feeder under the market.

- `topology`: the feeder's tree as arrays (path matrix, impedances per kW, ratings).
- `lindistflow`: voltages and flows as linear functions of the peers' withdrawals, and the
  limit rows the market LP gets (`p2pmarket.core.solve.model.define_feeder` adds them).
- `outcome`: what the feeder did in a cleared market: voltages, flows, binding limits and
  each peer's price split into energy, congestion and voltage terms.

The schema of the scenario's `feeder` section is `p2pmarket.core.scenario.feeder`; files and
pandapower networks are read at the edge (`p2pmarket.io.feeder_files`), and the AC power flow
that validates the linear model runs there too (`p2pmarket.io.pandapower_feeder`).
docs/feeder.md has the equations.
"""

from p2pmarket.core.feeder.lindistflow import (
    FeederModel,
    LimitRows,
    branch_flows,
    bus_voltages,
    feeder_model,
    linear_flow,
    withdrawal_bounds,
)
from p2pmarket.core.feeder.outcome import FeederOutcome, feeder_outcome, withdrawals
from p2pmarket.core.feeder.topology import Topology, topology
from p2pmarket.core.scenario.feeder import (
    FeederBus,
    FeederLine,
    FeederLoad,
    FeederNetwork,
    FeederPeer,
    FeederSection,
    FeederTransformer,
)

__all__ = [
    "FeederBus",
    "FeederLine",
    "FeederLoad",
    "FeederModel",
    "FeederNetwork",
    "FeederOutcome",
    "FeederPeer",
    "FeederSection",
    "FeederTransformer",
    "LimitRows",
    "Topology",
    "branch_flows",
    "bus_voltages",
    "feeder_model",
    "feeder_outcome",
    "linear_flow",
    "topology",
    "withdrawal_bounds",
    "withdrawals",
]
