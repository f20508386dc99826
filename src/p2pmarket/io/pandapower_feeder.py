"""pandapower at the edge: feeders imported from pandapower networks, and the AC power flow
that validates LinDistFlow on a cleared market (docs/feeder.md, "Validation").

pandapower is optional (`MissingExtraError` names how to install it). pandapower 3.5.6 asks
for pandas 2.3 while p2pmarket pins pandas 3; its power flow runs under pandas 3, but its
one-element `create_*` functions do not, so the network is built here with the vectorised
`create_buses`, `create_lines_from_parameters`, `create_transformers_from_parameters`,
`create_loads` and the external grid's table, which work under both.

`python -m p2pmarket.io.pandapower_feeder DIR` converts the pandapower JSON networks in DIR
(`tools/save_pandapower_networks.py` writes them) into the shipped feeder files;
`python -m p2pmarket.io.pandapower_feeder validate` prints LinDistFlow's errors against AC
power flow on every shipped feeder at its reference loads (docs/feeder.md, "Validation").
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from p2pmarket.core.feeder import FeederModel, FeederNetwork, FeederOutcome
from p2pmarket.errors import MissingExtraError, ScenarioError

__all__ = [
    "VALIDATION_COLUMNS",
    "AcFlow",
    "ac_power_flow",
    "feeder_from_pandapower",
    "reference_validation",
    "validate_feeder",
]

FloatArray = npt.NDArray[np.float64]

VALIDATION_COLUMNS = (
    "period",
    "max_abs_dv_pu",
    "max_loading_error_percent",
    "worst_bus",
    "worst_branch",
    "ac_min_vm_pu",
    "ac_max_vm_pu",
    "ac_max_loading_percent",
)
"""Columns of `feeder_validation.csv`: per period, the largest |V_LinDistFlow - V_AC| over
the buses (pu) and |loading_LinDistFlow - loading_AC| over the rated branches (percentage
points), where they occur, and the AC power flow's own extremes."""
_UNRATED_KA = 1e3
"""Ampacity given to pandapower for a line without one (pandapower needs a number)."""


def _pandapower() -> Any:
    """The pandapower module, or a `MissingExtraError` that says how to install it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pandapower
    except ImportError:
        raise MissingExtraError(
            "the feeder's AC power flow (docs/feeder.md)",
            "pandapower",
            "feeder",
            then="pip install --no-deps pandapower==3.5.6",
        ) from None
    return pandapower


# --- import ---------------------------------------------------------------------------


def feeder_from_pandapower(net: Any, name: str, description: str = "") -> dict[str, Any]:
    """A pandapower network as the data of a `FeederNetwork`: in-service buses, lines and
    transformers; buses joined by closed bus-bus switches merged into one; r and x of a line
    its per-km values times its length over its parallel circuits, its ampacity max_i_ka * df
    * parallel; loads (and asymmetric loads, their three phases summed) as reference loads.
    Shunt capacitance, iron losses and tap positions are dropped (LinDistFlow has none)."""
    bus = net.bus[net.bus.in_service.astype(bool)]
    merged = _switch_groups(net, bus.index)
    keep = sorted(set(merged.values()))
    ids = _bus_ids(bus.loc[keep])
    bus_id = {b: ids[merged[b]] for b in merged}
    line = net.line[net.line.in_service.astype(bool)]
    trafo = net.trafo[net.trafo.in_service.astype(bool)]
    coords = _coordinates(bus.loc[keep])
    root = int(net.ext_grid[net.ext_grid.in_service.astype(bool)].bus.iloc[0])
    data: dict[str, Any] = {
        "name": name,
        "description": description,
        "root": bus_id[root],
        "slack_vm_pu": float(net.ext_grid.vm_pu.iloc[0]),
        "buses": [{"id": ids[b], "vn_kv": float(bus.vn_kv[b]), **coords.get(b, {})} for b in keep],
        "lines": [
            {
                "id": _element_id(row["name"], f"line {i}"),
                "from_bus": bus_id[int(row.from_bus)],
                "to_bus": bus_id[int(row.to_bus)],
                "r_ohm": float(row.r_ohm_per_km * row.length_km / row.parallel),
                "x_ohm": float(row.x_ohm_per_km * row.length_km / row.parallel),
                "max_i_ka": float(row.max_i_ka * row.df * row.parallel),
            }
            for i, row in line.iterrows()
        ],
        "transformers": [
            {
                "id": _element_id(row["name"], f"trafo {i}"),
                "hv_bus": bus_id[int(row.hv_bus)],
                "lv_bus": bus_id[int(row.lv_bus)],
                "sn_kva": float(row.sn_mva * 1000 * row.parallel),
                "vk_percent": float(row.vk_percent),
                "vkr_percent": float(row.vkr_percent),
            }
            for i, row in trafo.iterrows()
        ],
        "loads": _loads(net, bus_id),
    }
    _unique_line_ids(data)
    return data


def _element_id(name: object, fallback: str) -> str:
    """An element's name where it has one, else `fallback`."""
    return name if isinstance(name, str) and name.strip() else fallback


def _switch_groups(net: Any, buses: pd.Index) -> dict[int, int]:
    """Each bus -> the bus it is merged into (closed bus-bus switches join buses)."""
    parent = {int(b): int(b) for b in buses}

    def find(b: int) -> int:
        while parent[b] != b:
            b = parent[b]
        return b

    sw = net.switch
    closed = sw[(sw.et == "b") & sw.closed.astype(bool)]
    for a, b in zip(closed.bus.astype(int), closed.element.astype(int), strict=True):
        if a in parent and b in parent:
            ra, rb = find(a), find(b)
            parent[max(ra, rb)] = min(ra, rb)
    return {b: find(b) for b in parent}


def _bus_ids(bus: pd.DataFrame) -> dict[int, str]:
    """Bus names where they are unique text, else the bus index."""
    names = bus.name.astype(object)
    usable = names.map(lambda v: isinstance(v, str) and bool(v.strip()))
    if usable.all() and names.is_unique:
        return {int(i): str(n) for i, n in zip(bus.index, names, strict=True)}
    return {int(i): f"bus {i}" for i in bus.index}


def _coordinates(bus: pd.DataFrame) -> dict[int, dict[str, float]]:
    """Bus coordinates from pandapower's GeoJSON `geo` column, where present."""
    out: dict[int, dict[str, float]] = {}
    if "geo" not in bus:
        return out
    for i, geo in zip(bus.index, bus.geo, strict=True):
        if isinstance(geo, str) and geo:
            point = json.loads(geo).get("coordinates")
            if isinstance(point, list) and len(point) == 2:
                out[int(i)] = {"x": float(point[0]), "y": float(point[1])}
    return out


def _loads(net: Any, bus_id: Mapping[int, str]) -> list[dict[str, Any]]:
    """The network's loads per bus (kW, kvar), scaled as pandapower scales them."""
    parts = []
    load = net.load[net.load.in_service.astype(bool)]
    if len(load):
        parts.append(
            pd.DataFrame(
                {
                    "bus": load.bus.astype(int),
                    "p_kw": load.p_mw * load.scaling * 1000,
                    "q_kvar": load.q_mvar * load.scaling * 1000,
                }
            )
        )
    if "asymmetric_load" in net and len(net.asymmetric_load):
        a = net.asymmetric_load[net.asymmetric_load.in_service.astype(bool)]
        p = (a.p_a_mw + a.p_b_mw + a.p_c_mw) * a.scaling * 1000
        q = (a.q_a_mvar + a.q_b_mvar + a.q_c_mvar) * a.scaling * 1000
        parts.append(pd.DataFrame({"bus": a.bus.astype(int), "p_kw": p, "q_kvar": q}))
    if not parts:
        return []
    total = pd.concat(parts).groupby("bus", sort=True)[["p_kw", "q_kvar"]].sum()
    return [
        {"bus": bus_id[int(b)], "p_kw": round(float(p), 9), "q_kvar": round(float(q), 9)}
        for b, p, q in zip(total.index, total["p_kw"], total["q_kvar"], strict=True)
    ]


def _unique_line_ids(data: dict[str, Any]) -> None:
    """Line and transformer ids made unique (pandapower names may repeat)."""
    seen: dict[str, int] = {}
    for item in (*data["lines"], *data["transformers"]):
        base = item["id"]
        if base in seen:
            seen[base] += 1
            item["id"] = f"{base} ({seen[base]})"
        else:
            seen[base] = 0


# --- AC power flow --------------------------------------------------------------------


@dataclass(frozen=True)
class AcFlow:
    """pandapower's AC power flow per period: `vm_pu` (buses, periods) in the topology's bus
    order, `loading_percent` (branches, periods) in its branch order (current over ampacity
    for a line, apparent power over rating for a transformer)."""

    vm_pu: FloatArray
    loading_percent: FloatArray


def ac_power_flow(network: FeederNetwork, p_kw: FloatArray, q_kvar: FloatArray) -> AcFlow:
    """Run pandapower's Newton-Raphson power flow once per period, with p_kw, q_kvar (buses,
    periods) drawn at each bus (negative: injected)."""
    pp = _pandapower()
    net, lines, trafos = _net(pp, network)
    T = p_kw.shape[1]
    vm = np.zeros((len(network.buses), T))
    loading = np.zeros((len(network.lines) + len(network.transformers), T))
    for t in range(T):
        net.load["p_mw"] = p_kw[:, t] / 1000
        net.load["q_mvar"] = q_kvar[:, t] / 1000
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pp.runpp(net, numba=False, init="flat" if t == 0 else "results")
        except pp.powerflow.LoadflowNotConverged:
            vm[:, t] = np.nan
            loading[:, t] = np.nan
            continue
        vm[:, t] = net.res_bus.vm_pu.to_numpy()
        loading[: len(lines), t] = net.res_line.loading_percent.reindex(lines).to_numpy()
        loading[len(lines) :, t] = net.res_trafo.loading_percent.reindex(trafos).to_numpy()
    return AcFlow(vm_pu=vm, loading_percent=loading)


def _at(ids: pd.Index, names: list[str]) -> npt.NDArray[np.int64]:
    """Positions of bus ids (known: the feeder was validated)."""
    return np.asarray(ids.get_indexer(pd.Index(names, dtype=object)), dtype=np.int64)


def _net(pp: Any, network: FeederNetwork) -> tuple[Any, pd.Index, pd.Index]:
    """The feeder as a pandapower network (bus i of the feeder is pandapower bus i), with
    one load per bus (zero until set)."""
    net = pp.create_empty_network(sn_mva=1.0)
    ids = pd.Index(network.bus_ids())
    buses = pp.create_buses(net, len(ids), vn_kv=[b.vn_kv for b in network.buses], name=list(ids))
    lines: pd.Index = pd.Index([], dtype=np.int64)
    if network.lines:
        lines = pd.Index(
            pp.create_lines_from_parameters(
                net,
                from_buses=_at(ids, [ln.from_bus for ln in network.lines]),
                to_buses=_at(ids, [ln.to_bus for ln in network.lines]),
                length_km=np.ones(len(network.lines)),
                r_ohm_per_km=[ln.r_ohm for ln in network.lines],
                x_ohm_per_km=[ln.x_ohm for ln in network.lines],
                c_nf_per_km=np.zeros(len(network.lines)),
                max_i_ka=[
                    ln.max_i_ka if ln.max_i_ka is not None else _UNRATED_KA for ln in network.lines
                ],
            )
        )
    trafos: pd.Index = pd.Index([], dtype=np.int64)
    vn = {b.id: b.vn_kv for b in network.buses}
    if network.transformers:
        ts = network.transformers
        trafos = pd.Index(
            pp.create_transformers_from_parameters(
                net,
                hv_buses=_at(ids, [t.hv_bus for t in ts]),
                lv_buses=_at(ids, [t.lv_bus for t in ts]),
                sn_mva=[t.sn_kva / 1000 for t in ts],
                vn_hv_kv=[vn[t.hv_bus] for t in ts],
                vn_lv_kv=[vn[t.lv_bus] for t in ts],
                vk_percent=[t.vk_percent for t in ts],
                vkr_percent=[t.vkr_percent for t in ts],
                pfe_kw=np.zeros(len(ts)),
                i0_percent=np.zeros(len(ts)),
            )
        )
    pp.create_loads(net, buses, p_mw=np.zeros(len(ids)), q_mvar=np.zeros(len(ids)))
    eg = net.ext_grid
    net.ext_grid = pd.DataFrame(  # the one-element create_ext_grid fails under pandas 3
        {
            "name": pd.Series(["root"], dtype=object),
            "bus": np.array([ids.get_loc(network.root)], dtype=eg.bus.dtype),
            "vm_pu": [network.slack_vm_pu],
            "va_degree": [0.0],
            "slack_weight": [1.0],
            "in_service": [True],
            "controllable": [False],
        }
    )
    return net, lines, trafos


# --- validation -----------------------------------------------------------------------


def bus_injections(model: FeederModel, withdrawal_kw: FloatArray) -> tuple[FloatArray, FloatArray]:
    """What the attached peers draw at each bus (kW, kvar), (buses, periods)."""
    n = len(model.topology.buses)
    p = np.zeros((n, withdrawal_kw.shape[1]))
    q = np.zeros_like(p)
    np.add.at(p, model.bus, withdrawal_kw)
    np.add.at(q, model.bus, model.tan_phi[:, None] * withdrawal_kw)
    return p, q


def validate_feeder(outcome: FeederOutcome) -> pd.DataFrame:
    """LinDistFlow against pandapower's AC power flow on the cleared withdrawals of every
    period (`VALIDATION_COLUMNS`)."""
    model = outcome.model
    p, q = bus_injections(model, outcome.withdrawal_kw)
    ac = ac_power_flow(model.section.network, p, q)
    vm = outcome.buses.pivot(index="bus", columns="period", values="vm_pu")
    linear_vm: FloatArray = vm.reindex(model.topology.buses).to_numpy(dtype=float)
    flows = outcome.branches.pivot(index="branch", columns="period", values="loading_percent")
    loading: FloatArray = flows.reindex(model.topology.branches).to_numpy(dtype=float)
    return compare(model, linear_vm, loading, ac)


def compare(
    model: FeederModel, linear_vm: FloatArray, linear_loading: FloatArray, ac: AcFlow
) -> pd.DataFrame:
    """The validation table from the linear and the AC voltages and loadings."""
    topo = model.topology
    dv = np.abs(linear_vm - ac.vm_pu)
    rated = np.isfinite(topo.rating_kva)
    dl = np.abs(linear_loading - ac.loading_percent)[rated]
    worst_bus = np.nanargmax(np.nan_to_num(dv, nan=-1), axis=0)
    worst_branch = np.nanargmax(np.nan_to_num(dl, nan=-1), axis=0) if dl.size else None
    T = dv.shape[1]
    return pd.DataFrame(
        {
            "period": np.arange(T),
            "max_abs_dv_pu": np.nanmax(dv, axis=0),
            "max_loading_error_percent": np.nanmax(dl, axis=0) if dl.size else np.zeros(T),
            "worst_bus": np.asarray(topo.buses)[worst_bus],
            "worst_branch": (
                np.asarray(topo.branches[rated])[worst_branch]
                if worst_branch is not None
                else np.full(T, "")
            ),
            "ac_min_vm_pu": np.nanmin(ac.vm_pu, axis=0),
            "ac_max_vm_pu": np.nanmax(ac.vm_pu, axis=0),
            "ac_max_loading_percent": np.nanmax(ac.loading_percent[rated], axis=0)
            if rated.any()
            else np.zeros(T),
        }
    )


# --- the shipped feeders --------------------------------------------------------------

_DESCRIPTIONS = {
    "kerber-dorfnetz": "Kerber Dorfnetz (rural LV feeder: 10/0.4 kV 400 kVA transformer, 57 "
    "households of 6 kW), from pandapower.networks.create_kerber_dorfnetz",
    "kerber-vorstadtnetz": "Kerber Vorstadtnetz, cable variant 1 (suburban LV feeder: 10/0.4 "
    "kV 630 kVA transformer, 146 households of 2 kW), from "
    "pandapower.networks.create_kerber_vorstadtnetz_kabel_1",
    "cigre-lv": "CIGRE LV benchmark (residential, industrial and commercial subnetworks, "
    "three 20/0.4 kV transformers; MV bus-bus switches merged), from "
    "pandapower.networks.create_cigre_network_lv",
    "ieee-european-lv": "IEEE European LV test feeder (11/0.416 kV 800 kVA, 55 single-phase "
    "loads summed as balanced loads), from pandapower.networks.ieee_european_lv_asymmetric",
}


def convert_saved(folder: Path, out: Path) -> None:
    """Convert pandapower JSON networks in `folder` into feeder files in `out`."""
    from p2pmarket.io.feeder_files import write_feeder

    pp = _pandapower()
    for name, description in _DESCRIPTIONS.items():
        source = folder / f"{name}.json"
        if not source.is_file():
            raise ScenarioError("feeder", f"no pandapower network at {str(source)!r}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = pp.from_json(str(source))
        data = feeder_from_pandapower(net, name, description)
        FeederNetwork.model_validate(_frozen(data))  # the shipped file must be a valid feeder
        write_feeder(data, out, name)


def _frozen(value: Any) -> Any:
    """Lists as tuples (the schema's strict mode holds immutable sequences)."""
    if isinstance(value, Mapping):
        return {k: _frozen(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def reference_validation() -> pd.DataFrame:
    """LinDistFlow against AC power flow on every shipped feeder at its own reference loads:
    one row per feeder (buses, largest |dV| in pu, largest loading error in percentage
    points, the AC flow's lowest voltage), the bounds docs/feeder.md states."""
    from p2pmarket.core.feeder import linear_flow, topology
    from p2pmarket.io.feeder_files import SHIPPED, read_feeder, shipped_feeder_path

    rows = []
    for name in SHIPPED:
        network = FeederNetwork.model_validate(_frozen(read_feeder(shipped_feeder_path(name))))
        topo = topology(network)
        p = np.zeros((len(topo.buses), 1))
        q = np.zeros_like(p)
        at = _at(topo.buses, [load.bus for load in network.loads])
        np.add.at(p[:, 0], at, [load.p_kw for load in network.loads])
        np.add.at(q[:, 0], at, [load.q_kvar for load in network.loads])
        vm, flow_p, flow_q = linear_flow(topo, network.slack_vm_pu**2, p, q)
        ac = ac_power_flow(network, p, q)
        loading = 100 * np.hypot(flow_p, flow_q) / topo.rating_kva[:, None]
        rows.append(
            {
                "feeder": name,
                "buses": len(topo.buses),
                "load_kw": float(p.sum()),
                "max_abs_dv_pu": float(np.abs(vm - ac.vm_pu).max()),
                "max_loading_error_percent": float(np.nanmax(np.abs(loading - ac.loading_percent))),
                "ac_min_vm_pu": float(np.nanmin(ac.vm_pu)),
            }
        )
    return pd.DataFrame(rows)


def _main(argv: list[str]) -> None:  # pragma: no cover - maintainers' commands
    """`validate`: print `reference_validation()`; `DIR [OUT]`: `convert_saved`."""
    if argv[:1] == ["validate"]:
        print(reference_validation().to_string(index=False))
        return
    target = Path(__file__).resolve().parents[1] / "cases" / "data" / "feeders"
    out = Path(argv[1]) if len(argv) > 1 else target
    convert_saved(Path(argv[0]), out)
    print(f"wrote the shipped feeders to {out}")


if __name__ == "__main__":  # pragma: no cover
    _main(sys.argv[1:])
