"""Bilateral trades: who sold to whom, also when energy passed through community managers.

A direct p2p trade is already bilateral. Energy that enters a manager node is mixed there, so
each kWh leaving a manager is attributed to the sellers upstream in proportion to what they
put in (proportional sharing). With manager -> manager trades the shares of all managers of a
period follow from one small linear system,

    (I - A) E = B,   A[k, j] = x[j -> k] / inflow[j],   B[k, o] = x[o -> k] (o a peer),

where E[k, o] is the energy of seller o passing through manager k. The fees paid along the way
are attributed the same way: (I - A) G = B_fee + W E with W[k, j] = x[j -> k] fee[j -> k] /
inflow[j]. Any decomposition of an optimal flow is optimal; this one is unique, needs no
search, and keeps every seller's energy and every fee paid.
"""

from __future__ import annotations

import graphlib

import numpy as np
import pandas as pd

from p2pmarket.core.network import MANAGER_PREFIX
from p2pmarket.core.results import ClearingResult

__all__ = ["BILATERAL_COLUMNS", "bilateral_trades", "route_through"]

BILATERAL_COLUMNS = ("period", "seller", "buyer", "energy_kwh", "fee", "via_manager")
"""`fee` is the currency paid in fees on the way from seller to buyer (all links)."""


def bilateral_trades(result: ClearingResult) -> pd.DataFrame:
    """Trades between peers, manager nodes resolved; one row per period, seller and buyer."""
    return route_through(result.trades, MANAGER_PREFIX)


def route_through(trades: pd.DataFrame, prefix: str, in_order: bool = False) -> pd.DataFrame:
    """Resolve pass-through nodes (names starting with `prefix`) in a table of link flows
    (`period, seller, buyer, energy_kwh, fee`) into trades between the other nodes.

    By default by proportional sharing (unique; its output grows with sellers x buyers of a
    node). With `in_order=True`, for large acyclic networks of hubs, each node hands on what
    it received in order, seller by seller, filling its outflows in order (the north-west
    corner rule): at most inflows + outflows pieces per node, so the output grows with the
    links. Both keep every seller's energy and every fee, and both are optimal decompositions.
    """
    if in_order:
        return _in_order(trades, prefix)
    is_manager_seller = trades["seller"].str.startswith(prefix)
    is_manager_buyer = trades["buyer"].str.startswith(prefix)
    direct = trades[~is_manager_seller & ~is_manager_buyer]
    parts = [_direct(direct).assign(via_manager=False)]
    routed = trades[is_manager_seller | is_manager_buyer]
    for period, flows in routed.groupby("period", sort=True):
        parts.append(_through_managers(int(str(period)), flows, prefix))
    out = pd.concat(parts, ignore_index=True)
    out = out[out["energy_kwh"] > 0]
    return (
        out.groupby(["period", "seller", "buyer", "via_manager"], as_index=False)[
            ["energy_kwh", "fee"]
        ]
        .sum()
        .loc[:, list(BILATERAL_COLUMNS)]
        .sort_values(["period", "seller", "buyer"], ignore_index=True)
    )


def _direct(trades: pd.DataFrame) -> pd.DataFrame:
    """The trades between peers, as they are."""
    return trades[["period", "seller", "buyer", "energy_kwh", "fee"]].reset_index(drop=True)


def _in_order(trades: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """North-west corner decomposition through an acyclic network of pass-through nodes.

    Hubs are taken level by level (a level's hubs receive only from peers and from earlier
    levels); each level is matched for every hub and period at once (`_match`).
    """
    hub_seller = trades["seller"].str.startswith(prefix).to_numpy()
    hub_buyer = trades["buyer"].str.startswith(prefix).to_numpy()
    direct = trades[~hub_seller & ~hub_buyer]
    done = [_direct(direct)]
    between = trades[hub_seller & hub_buyer]
    before = {str(h): set(g["seller"]) for h, g in between.groupby("buyer")}
    level: dict[str, int] = {}
    for hub in graphlib.TopologicalSorter(before).static_order():
        level[hub] = 1 + max((level[h] for h in before.get(hub, ())), default=-1)
    hubs = pd.Index(
        sorted(set(trades.loc[hub_seller, "seller"]) | set(trades.loc[hub_buyer, "buyer"]))
    )
    depth = np.array([level.get(h, 0) for h in hubs])
    into = trades[~hub_seller & hub_buyer]
    parcels = pd.DataFrame(
        {
            "period": into["period"].to_numpy(),
            "hub": hubs.get_indexer(pd.Index(into["buyer"])),
            "origin": into["seller"].to_numpy(),
            "energy_kwh": into["energy_kwh"].to_numpy(),
            "fee": into["fee"].to_numpy(),
        }
    )
    out_of = trades[hub_seller]
    outflows = pd.DataFrame(
        {
            "period": out_of["period"].to_numpy(),
            "hub": hubs.get_indexer(pd.Index(out_of["seller"])),
            "buyer": out_of["buyer"].to_numpy(),
            "energy_kwh": out_of["energy_kwh"].to_numpy(),
            "fee": out_of["fee"].to_numpy(),
        }
    )
    for d in range(int(depth.max(initial=-1)) + 1):
        at_level = depth[parcels["hub"].to_numpy()] == d
        matched = _match(
            parcels[at_level], outflows[depth[outflows["hub"].to_numpy()] == d], len(hubs)
        )
        parcels = parcels[~at_level]
        onward = matched["buyer"].str.startswith(prefix).to_numpy()
        later = matched[onward]
        parcels = pd.concat(
            [
                parcels,
                pd.DataFrame(
                    {
                        "period": later["period"].to_numpy(),
                        "hub": hubs.get_indexer(pd.Index(later["buyer"])),
                        "origin": later["origin"].to_numpy(),
                        "energy_kwh": later["energy_kwh"].to_numpy(),
                        "fee": later["fee"].to_numpy(),
                    }
                ),
            ],
            ignore_index=True,
        )
        done.append(matched[~onward].rename(columns={"origin": "seller"}))
    out = pd.concat(done, ignore_index=True)
    out = out[out["energy_kwh"] > 1e-9]
    return out.groupby(["period", "seller", "buyer"], as_index=False)[["energy_kwh", "fee"]].sum()


def _match(parcels: pd.DataFrame, outflows: pd.DataFrame, n_hubs: int) -> pd.DataFrame:
    """Match the parcels that entered each (period, hub) to its outflows in order.

    Both sides are sorted by (period, hub); each hub's outflows are scaled to sum exactly to
    what entered it (they differ by rounding only), so one global cumulative sum on each side
    puts every hub's parcels and outflows on the same stretch of a line, and one sorted merge
    of the two sets of cut points gives every piece: at most parcels + outflows pieces.
    """
    columns = ["period", "origin", "buyer", "energy_kwh", "fee"]
    if parcels.empty or outflows.empty:
        return pd.DataFrame({c: [] for c in columns})
    key_in = parcels["period"].to_numpy() * n_hubs + parcels["hub"].to_numpy()
    key_out = outflows["period"].to_numpy() * n_hubs + outflows["hub"].to_numpy()
    a = np.argsort(key_in, kind="stable")
    b = np.argsort(key_out, kind="stable")
    key_in, key_out = key_in[a], key_out[b]
    supply = parcels["energy_kwh"].to_numpy()[a]
    demand = outflows["energy_kwh"].to_numpy()[b]
    size = int(max(key_in.max(), key_out.max())) + 1
    entered = np.bincount(key_in, weights=supply, minlength=size)
    leaving = np.bincount(key_out, weights=demand, minlength=size)
    scale = np.divide(entered, leaving, out=np.zeros(size), where=leaving > 0)
    cut_in = np.cumsum(supply)
    cut_out = np.cumsum(demand * scale[key_out])
    cuts = np.unique(np.concatenate([cut_in, cut_out]))
    lo = np.concatenate([[0.0], cuts[:-1]])
    middle = (lo + cuts) / 2
    i = np.minimum(np.searchsorted(cut_in, middle), supply.size - 1)
    j = np.minimum(np.searchsorted(cut_out, middle), demand.size - 1)
    keep = key_in[i] == key_out[j]  # drops rounding slivers across hub boundaries
    i, j = i[keep], j[keep]
    energy = (cuts - lo)[keep]
    fee_in = parcels["fee"].to_numpy()[a] / np.where(supply > 0, supply, 1.0)
    fee_out = outflows["fee"].to_numpy()[b] / np.where(demand > 0, demand, 1.0)
    return pd.DataFrame(
        {
            "period": key_in[i] // n_hubs,
            "origin": parcels["origin"].to_numpy()[a][i],
            "buyer": outflows["buyer"].to_numpy()[b][j],
            "energy_kwh": energy,
            "fee": energy * (fee_in[i] + fee_out[j]),
        }
    )


def _through_managers(period: int, flows: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Proportional sharing of the flows through the pass-through nodes in one period."""
    managers = pd.Index(
        sorted(
            set(flows.loc[flows["seller"].str.startswith(prefix), "seller"])
            | set(flows.loc[flows["buyer"].str.startswith(prefix), "buyer"])
        )
    )
    into = flows[flows["buyer"].str.startswith(prefix)]
    out_of = flows[flows["seller"].str.startswith(prefix)]
    from_peer = into[~into["seller"].str.startswith(prefix)]
    between = into[into["seller"].str.startswith(prefix)]
    to_peer = out_of[~out_of["buyer"].str.startswith(prefix)]

    origins = pd.Index(sorted(set(from_peer["seller"])))
    k, o = len(managers), len(origins)
    inflow = np.zeros(k)
    np.add.at(inflow, managers.get_indexer(pd.Index(into["buyer"])), into["energy_kwh"].to_numpy())
    safe_inflow = np.where(inflow > 0, inflow, 1.0)

    rows = managers.get_indexer(pd.Index(from_peer["buyer"]))
    cols = origins.get_indexer(pd.Index(from_peer["seller"]))
    b_energy = np.zeros((k, o))
    b_fee = np.zeros((k, o))
    np.add.at(b_energy, (rows, cols), from_peer["energy_kwh"].to_numpy())
    np.add.at(b_fee, (rows, cols), from_peer["fee"].to_numpy())

    to_k = managers.get_indexer(pd.Index(between["buyer"]))
    from_j = managers.get_indexer(pd.Index(between["seller"]))
    share = np.zeros((k, k))
    fee_rate = np.zeros((k, k))
    np.add.at(share, (to_k, from_j), between["energy_kwh"].to_numpy() / safe_inflow[from_j])
    np.add.at(fee_rate, (to_k, from_j), between["fee"].to_numpy() / safe_inflow[from_j])
    system = np.eye(k) - share
    energy = np.linalg.lstsq(system, b_energy, rcond=None)[0]
    fees = np.linalg.lstsq(system, b_fee + fee_rate @ energy, rcond=None)[0]

    hub = managers.get_indexer(pd.Index(to_peer["seller"]))
    part = to_peer["energy_kwh"].to_numpy()[:, None] / safe_inflow[hub][:, None]
    delivered = part * energy[hub]  # (deliveries, origins)
    delivered_fee = (
        part * fees[hub] + (to_peer["fee"].to_numpy() / safe_inflow[hub])[:, None] * energy[hub]
    )
    n_out = len(to_peer)
    return pd.DataFrame(
        {
            "period": period,
            "seller": np.tile(np.asarray(origins), n_out),
            "buyer": np.repeat(to_peer["buyer"].to_numpy(), o),
            "energy_kwh": delivered.ravel(),
            "fee": delivered_fee.ravel(),
            "via_manager": True,
        }
    )
