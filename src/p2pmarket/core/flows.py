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

from dataclasses import dataclass

import numpy as np
import pandas as pd

from p2pmarket.core.results import ClearingResult
from p2pmarket.types import NodeKind

__all__ = ["BILATERAL_COLUMNS", "bilateral_trades"]

BILATERAL_COLUMNS = ("period", "seller", "buyer", "energy_kwh", "fee", "via_manager")
"""`fee` is the currency paid in fees on the way from seller to buyer (all links)."""


def bilateral_trades(result: ClearingResult) -> pd.DataFrame:
    """Trades between peers, manager nodes resolved; one row per period, seller and buyer.

    Pass-through nodes are those whose `seller_kind` / `buyer_kind` is not `peer`; names are
    never looked at for that (a peer may be called `manager:C1`)."""
    trades = result.trades
    via_seller = (trades["seller_kind"] != NodeKind.PEER).to_numpy()
    via_buyer = (trades["buyer_kind"] != NodeKind.PEER).to_numpy()
    direct = trades[~via_seller & ~via_buyer]
    parts = [
        direct[["period", "seller", "buyer", "energy_kwh", "fee"]]
        .reset_index(drop=True)
        .assign(via_manager=False)
    ]
    routed = trades[via_seller | via_buyer]
    if len(routed):
        parts.append(_through_managers(routed))
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


def _through_managers(flows: pd.DataFrame) -> pd.DataFrame:
    """Proportional sharing of the flows through the pass-through nodes, every period at
    once: the systems of the periods are independent, so each period's `(I - A)` is
    inverted in one stacked call (min-norm, as least squares gives where a cycle of managers
    makes it singular) and the products with the sparse right-hand sides are joins on
    (period, manager). Managers are keyed by name among managers, sellers by name among
    peers: the two sets of names may overlap. One row per delivery and seller reached."""
    via_seller = (flows["seller_kind"] != NodeKind.PEER).to_numpy()
    via_buyer = (flows["buyer_kind"] != NodeKind.PEER).to_numpy()
    periods, period_pos = np.unique(flows["period"].to_numpy(np.int64), return_inverse=True)
    seller = flows["seller"].to_numpy(object)
    buyer = flows["buyer"].to_numpy(object)
    energy = flows["energy_kwh"].to_numpy(float)
    fee = flows["fee"].to_numpy(float)
    managers = pd.Index(sorted(set(seller[via_seller]) | set(buyer[via_buyer])))
    k = len(managers)
    n_periods = len(periods)

    def node(positions: np.ndarray, names: np.ndarray) -> np.ndarray:
        """(period, manager) as one code: period position * k + manager position."""
        at = period_pos[positions] * k + managers.get_indexer(pd.Index(names))
        return np.asarray(at, dtype=np.int64)

    into = np.flatnonzero(via_buyer)
    inflow = np.bincount(node(into, buyer[into]), energy[into], minlength=n_periods * k)
    safe_inflow = np.where(inflow > 0, inflow, 1.0)

    # The right-hand side B: each peer's sale into a manager, keyed (period, manager, seller).
    from_peer = np.flatnonzero(via_buyer & ~via_seller)
    origins = pd.Index(sorted(set(seller[from_peer])))
    b_node = node(from_peer, buyer[from_peer])
    b_origin = origins.get_indexer(pd.Index(seller[from_peer]))

    # (I - A)^-1 = M and M W, stacked over the periods with a manager -> manager flow (in
    # the others, as in a market of one community, M = I and W = 0: E = B and G = B_fee).
    between = np.flatnonzero(via_buyer & via_seller)
    coupled = np.zeros(0, np.int64)
    inverse: np.ndarray = np.zeros((0, k, k))
    weighted: np.ndarray = inverse
    if len(between):
        coupled, local = np.unique(period_pos[between], return_inverse=True)
        from_j = node(between, seller[between])
        cell = (local * k + node(between, buyer[between]) % k) * k + from_j % k
        size = len(coupled) * k * k
        share = np.bincount(cell, energy[between] / safe_inflow[from_j], size)
        rate = np.bincount(cell, fee[between] / safe_inflow[from_j], size)
        inverse = np.linalg.pinv(np.eye(k) - share.reshape(-1, k, k))
        weighted = inverse @ rate.reshape(-1, k, k)
    m = _Stacked.of(inverse, coupled, k, identity_periods=n_periods)
    mw = _Stacked.of(weighted, coupled, k)

    # E = M B and G = M B_fee + (M W) E, as sums over (period, manager, seller) cells
    # (cell = node * o + seller; o is at least 1, as a stride: with no sale into a manager
    # there are no cells).
    o = max(len(origins), 1)
    b_cells, (e_add, b_fee_add) = m.times(b_node, b_origin, o, energy[from_peer], fee[from_peer])
    w_cells, (w_add,) = mw.times(b_cells // o, b_cells % o, o, e_add)
    cells, code = np.unique(np.concatenate([b_cells, w_cells]), return_inverse=True)
    e_sum = np.bincount(code[: b_cells.size], e_add, len(cells))
    g_sum = np.bincount(code, np.concatenate([b_fee_add, w_add]), len(cells))

    # Each delivery out of a manager to a peer takes its part of every seller in that node.
    out = np.flatnonzero(via_seller & ~via_buyer)
    hub = node(out, seller[out])
    row, at = _matches(cells // o, hub)  # `cells` is sorted, so is cells // o
    part = energy[out][row] / safe_inflow[hub][row]
    fee_part = fee[out][row] / safe_inflow[hub][row]
    return pd.DataFrame(
        {
            "period": periods[period_pos[out][row]],
            "seller": np.asarray(origins, dtype=object)[cells[at] % o],
            "buyer": buyer[out][row],
            "energy_kwh": part * e_sum[at],
            "fee": part * g_sum[at] + fee_part * e_sum[at],
            "via_manager": True,
        }
    )


def _matches(keys: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i, j) with `query[i] == keys[j]`, `keys` sorted: as two arrays, i
    ascending."""
    first = np.searchsorted(keys, query, "left")
    count = np.searchsorted(keys, query, "right") - first
    i = np.repeat(np.arange(len(query)), count)
    j = np.repeat(first - np.cumsum(count) + count, count) + np.arange(int(count.sum()))
    return i, j


@dataclass(frozen=True)
class _Stacked:
    """A block-diagonal matrix over (period, manager) nodes by its nonzero entries:
    `weight` at (`row`, `col`), sorted by `col`."""

    row: np.ndarray
    col: np.ndarray
    weight: np.ndarray

    @classmethod
    def of(
        cls, blocks: np.ndarray, periods: np.ndarray, k: int, identity_periods: int = 0
    ) -> _Stacked:
        """The blocks `blocks[i]` (k x k) of the periods `periods[i]`; with
        `identity_periods` = n, the identity in the other periods of 0..n-1."""
        at, h, j = np.nonzero(blocks)
        row = periods[at] * k + h
        col = periods[at] * k + j
        weight = blocks[at, h, j]
        if identity_periods:
            other = np.setdiff1d(np.arange(identity_periods), periods)
            diagonal = (other[:, None] * k + np.arange(k)).ravel()
            row, col = np.concatenate([row, diagonal]), np.concatenate([col, diagonal])
            weight = np.concatenate([weight, np.ones(diagonal.size)])
        order = np.argsort(col, kind="stable")
        return cls(row[order], col[order], weight[order])

    def times(
        self, node: np.ndarray, origin: np.ndarray, o: int, *values: np.ndarray
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """This matrix times matrices X of one sparsity, given by their entries (`node`,
        `origin`, one array of `values` per X): the cells `node' * o + origin` of the
        products and each product's addends (a cell may repeat)."""
        entry, at = _matches(self.col, node)
        cells = self.row[at] * o + origin[entry]
        return cells, [self.weight[at] * value[entry] for value in values]
