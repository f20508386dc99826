"""The scenario's feeder: the physical low-voltage grid under the market (SPEC C12).

The trade-link graph of a design is called `network` in the code; the physical grid is the
`feeder` everywhere. A scenario's `feeder` section holds the grid itself (`network`: buses,
lines, transformers, all resolved to data: files and pandapower names are read at the edge,
`p2pmarket.io.feeder_files`), where each peer is attached (`peers`: bus and power factor)
and the limits the market must respect (voltage band, loading). Units are in the names:
`vn_kv`, `r_ohm`, `max_i_ka`, `sn_kva`, `vm_pu`. docs/feeder.md describes the format.

Validation here is of the grid alone (ids unique, every line and transformer between known
buses, the whole grid one radial tree hanging from `root`); `check_feeder_peers` checks the
attachments against the scenario's peers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Self

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from scipy.sparse.csgraph import breadth_first_order

from p2pmarket.core.scenario.limits import MAX_DESCRIPTION_CHARS, MAX_TEXT_CHARS
from p2pmarket.core.scenario.messages import label, show
from p2pmarket.errors import ScenarioError

if TYPE_CHECKING:
    from p2pmarket.core.scenario.schema import Scenario

__all__ = [
    "MAX_FEEDER_BUSES",
    "FeederBus",
    "FeederLine",
    "FeederLoad",
    "FeederNetwork",
    "FeederPeer",
    "FeederSection",
    "FeederTransformer",
    "check_feeder_peers",
]

MAX_FEEDER_BUSES = 20_000
"""The most buses a feeder may have (the IEEE European LV feeder has 907)."""

Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
LongText = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION_CHARS)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


class _Part(BaseModel):
    """Base of the feeder's schema elements: frozen, strict, unknown fields refused (as the
    scenario's own elements; errors are reported from the scenario's root)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


class FeederBus(_Part):
    """A bus: its nominal line-to-line voltage (kV) and, optionally, drawing coordinates."""

    id: Text
    vn_kv: Positive
    x: float | None = None
    y: float | None = None


class FeederLine(_Part):
    """A three-phase line (cable) between two buses: series resistance and reactance (ohm,
    the whole length, parallel circuits combined) and ampacity (kA per phase, the thermal
    limit; None: unlimited)."""

    id: Text
    from_bus: Text
    to_bus: Text
    r_ohm: NonNegative
    x_ohm: NonNegative
    max_i_ka: Positive | None = None


class FeederTransformer(_Part):
    """A two-winding transformer: rating (kVA) and short-circuit voltages (% of rated
    voltage; `vkr_percent` is its resistive part). Magnetising current and iron losses are
    not modelled (LinDistFlow has no shunt elements)."""

    id: Text
    hv_bus: Text
    lv_bus: Text
    sn_kva: Positive
    vk_percent: Positive
    vkr_percent: NonNegative = 0.0


class FeederLoad(_Part):
    """A reference load shipped with a feeder (e.g. the Kerber networks' 6 kW households):
    used to validate the linear model against AC power flow at the feeder's own loads, never
    part of the market."""

    bus: Text
    p_kw: float
    q_kvar: float = 0.0


class FeederNetwork(_Part):
    """A radial feeder: buses, lines and transformers forming one tree whose `root` bus is
    held at `slack_vm_pu` by the upstream grid (pandapower's external grid)."""

    name: Text = "feeder"
    description: LongText = ""
    root: Text
    slack_vm_pu: Positive = 1.0
    buses: tuple[FeederBus, ...]
    lines: tuple[FeederLine, ...] = ()
    transformers: tuple[FeederTransformer, ...] = ()
    loads: tuple[FeederLoad, ...] = ()

    @model_validator(mode="after")
    def _radial(self) -> Self:
        check_network(self)
        return self

    def bus_ids(self) -> tuple[str, ...]:
        return tuple(b.id for b in self.buses)


class FeederPeer(_Part):
    """Where a peer is attached: its bus and the power factor of its net exchange with the
    feeder (q_kvar = tan(acos(power_factor)) * p_kw: drawing reactive power as it imports,
    giving it back as it exports; 1.0: active power only)."""

    peer: Text
    bus: Text
    power_factor: Annotated[float, Field(gt=0, le=1)] = 1.0


class FeederSection(_Part):
    """The scenario's `feeder`: the grid, the peers' buses and the limits of clearing.

    `vmin_pu`..`vmax_pu` bound every bus but the root; `max_loading_percent` scales every
    line's and transformer's rating (100: the rating itself); `source` says where the grid
    came from (a file or a pandapower network name), for reports.
    """

    network: FeederNetwork
    peers: tuple[FeederPeer, ...] = ()
    vmin_pu: Positive = 0.95
    vmax_pu: Positive = 1.05
    max_loading_percent: Positive = 100.0
    source: Text = ""

    @model_validator(mode="after")
    def _band(self) -> Self:
        if self.vmin_pu >= self.vmax_pu:
            raise ScenarioError(
                "vmin_pu", f"{self.vmin_pu:g} pu is not below vmax_pu ({self.vmax_pu:g} pu)"
            )
        return self


def check_network(net: FeederNetwork) -> None:
    """Ids unique, every branch between two known buses, and the grid one radial tree from
    `root` (as many branches as buses less one, every bus reached): LinDistFlow's flows
    follow from the injections only on a tree."""
    if len(net.buses) > MAX_FEEDER_BUSES:
        raise ScenarioError(
            "buses", f"{len(net.buses):,} buses are more than the limit of {MAX_FEEDER_BUSES:,}"
        )
    ids = net.bus_ids()
    _unique(ids, "buses", "bus id")
    branches = [
        ("lines", ln.id, ("from_bus", ln.from_bus), ("to_bus", ln.to_bus)) for ln in net.lines
    ]
    branches += [
        ("transformers", t.id, ("hv_bus", t.hv_bus), ("lv_bus", t.lv_bus)) for t in net.transformers
    ]
    _unique([b[1] for b in branches], "lines", "line or transformer id")
    index = {b: i for i, b in enumerate(ids)}
    if net.root not in index:
        raise ScenarioError("root", f"unknown bus {net.root!r}")
    ends: list[tuple[int, int]] = []
    for i, (field, name, *pair) in enumerate(branches):
        at = i if field == "lines" else i - len(net.lines)
        for key, bus in pair:
            if bus not in index:
                raise ScenarioError(f"{field}[{label(name, at)}].{key}", f"unknown bus {bus!r}")
        (_, a), (_, b) = pair
        if a == b:
            raise ScenarioError(f"{field}[{label(name, at)}]", f"both ends are bus {a!r}")
        ends.append((index[a], index[b]))
    for i, t in enumerate(net.transformers):
        if t.vkr_percent > t.vk_percent:
            raise ScenarioError(
                f"transformers[{label(t.id, i)}].vkr_percent",
                f"{t.vkr_percent:g} % is above vk_percent ({t.vk_percent:g} %)",
            )
    for i, load in enumerate(net.loads):
        if load.bus not in index:
            raise ScenarioError(f"loads[{i}].bus", f"unknown bus {load.bus!r}")
    n = len(ids)
    if len(ends) != n - 1:
        raise ScenarioError(
            "lines",
            f"{len(ends)} lines and transformers for {n} buses: a radial feeder has one"
            f" branch fewer than buses ({n - 1})",
        )
    reached = _reached(n, ends, index[net.root])
    if reached.size < n:
        missing = sorted(set(range(n)) - set(reached.tolist()))
        raise ScenarioError(
            "buses", f"bus {ids[missing[0]]!r} is not connected to the root {net.root!r}"
        )


def _reached(n: int, ends: Sequence[tuple[int, int]], root: int) -> np.ndarray[Any, Any]:
    """The buses reached from `root` over the branches (breadth first)."""
    if not ends:
        return np.array([root])
    a, b = np.array(ends).T
    graph = sp.coo_matrix((np.ones(a.size), (a, b)), shape=(n, n)).tocsr()
    order: np.ndarray[Any, Any] = breadth_first_order(
        graph, root, directed=False, return_predecessors=False
    )
    return order


def check_feeder_peers(s: Scenario) -> None:
    """Every peer but the grid sits on one known bus of the feeder; the grid peers are the
    upstream grid at the root and are not attached (LinDistFlow's slack)."""
    feeder = s.feeder
    if feeder is None:
        return
    buses = set(feeder.network.bus_ids())
    roles = {p.id: p.role for p in s.peers}
    seen: set[str] = set()
    for i, attached in enumerate(feeder.peers):
        where = f"feeder.peers[{label(attached.peer, i)}]"
        if attached.peer not in roles:
            raise ScenarioError(f"{where}.peer", f"unknown peer {attached.peer!r}")
        if roles[attached.peer] == "grid":
            raise ScenarioError(
                f"{where}.peer",
                f"{attached.peer!r} is a grid peer: the grid is the feeder's root"
                f" ({feeder.network.root!r}) and is not attached to a bus",
            )
        if attached.peer in seen:
            raise ScenarioError(f"{where}.peer", f"peer {attached.peer!r} is attached twice")
        seen.add(attached.peer)
        if attached.bus not in buses:
            raise ScenarioError(f"{where}.bus", f"unknown bus {show(attached.bus)}")
        if attached.bus == feeder.network.root:
            raise ScenarioError(
                f"{where}.bus", f"{attached.bus!r} is the root, held by the upstream grid"
            )
    missing = [p.id for p in s.peers if p.role != "grid" and p.id not in seen]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ScenarioError(
            "feeder.peers", f"peer {missing[0]!r} is attached to no bus of the feeder{more}"
        )


def _unique(ids: Sequence[str], field: str, what: str) -> None:
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    if repeated:
        raise ScenarioError(field, f"duplicate {what} {repeated[0]!r}")
