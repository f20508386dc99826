"""Every agent's own subproblem of an ADMM iteration, solved exactly and all at once.

Agent i's subproblem (SPEC section 3 restricted to its own variables w_i):

    min  sum_j c_j w_j  +  sum_j q_j / 2 (w_j - v_j)^2
    s.t. A_i w_i = b_i,   lo <= w_i <= hi

with its variables generation p, storage charge/discharge/soc, flexible demand d,
absorption a, its copies xs (sales) and xb (purchases) of its trades, and two slacks
(`e`: the no-resale row as an equality, `f`: the final state of charge); rows, one per
period unless said:

    balance   p + dis - ch + sum xb - sum xs - sum d - a = load      (paper Eq. 8)
    no-resale sum xs - p - dis + e = 0                                (peers that sell)
    storage   soc[t] - soc[t-1] - dt eta_ch ch + dt / eta_dis dis = soc_init if t = 0 else 0
    final     soc[T-1] - f = final_soc                                (one row)

The quadratic is the ADMM penalty on trade copies (q = rho dt, v the link's target) and
the proximal term on every other variable (q = delta dt, v its previous value): so every
q_j > 0, and the subproblem is a strictly convex separable QP with a handful of rows.

It is solved through its dual: w(mu) = clip((A' mu - g) / q, lo, hi) with g = c - q v, and
the dual is maximised by a semismooth Newton method (generalised Hessian A D A', D the
free variables' 1/q; a row whose variables all sit at a bound keeps a 1e-8 share of theirs),
with an Armijo backtracking step per agent, until each agent's rows hold to 1e-9 kW (times
its scale). An agent whose steps have not settled after 50 (they can cycle between active
sets, e.g. a lossless battery whose charge and discharge columns cancel; rare) goes on with
damped steps (bound variables weighing 1e-2 in its Hessian), and after 400 more is solved
by HiGHS's QP solver on its block alone (`qp.solve_qp`). Every agent is a block: the
Hessians are assembled for all agents with one
`bincount` and solved with one batched dense solve per block size, so the work per
iteration is a few vectorised passes whatever the number of agents. An agent's arithmetic
does not depend on which other agents share the batch, so a batch of one (an agent on its
own, `p2pmarket.core.solve.admm.agent`) gives bit-for-bit the same solution; the multipliers
are kept from one call to the next (a warm start: ADMM changes the targets a little).

The balance multipliers are the agents' prices: mu_balance / dt is what a kWh is worth to
the agent (SPEC section 3's lambda), and (mu_balance - mu_resale) / dt its selling price.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from p2pmarket.core.scenario import FloatArray
from p2pmarket.core.solve.admm.qp import solve_qp
from p2pmarket.core.solve.admm.records import AgentRecord
from p2pmarket.errors import InfeasibleMarketError, SolverError

__all__ = ["LocalProblems", "VarKind"]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

K = 3
"""At most this many rows hold any one variable."""
KAPPA = 1e-8
"""Share of a bound variable's 1/q kept in the Newton Hessian (keeps it invertible)."""
TOLERANCE = 1e-9
"""Each agent's rows hold to this (kW, times 1 + the agent's largest bound or load)."""
MAX_NEWTON = 50
MAX_DAMPED = 400
KAPPA_DAMPED = 1e-2
"""After `MAX_NEWTON` steps an agent still unsettled goes on with bound variables weighing
this much in its Hessian: slower, but it does not cycle between active sets."""
MAX_HALVINGS = 40


class VarKind:
    """Codes of the variable families (`LocalProblems.kind`)."""

    GENERATION, CHARGE, DISCHARGE, SOC, FLEXIBLE, ABSORPTION = 0, 1, 2, 3, 4, 5
    SELL, BUY, RESALE_SLACK, FINAL_SLACK = 6, 7, 8, 9


@dataclass
class _Builder:
    """Variables and rows of the agents, appended agent by agent."""

    lo: list[float]
    hi: list[float]
    cost: list[float]
    owner: list[int]
    kind: list[int]
    period: list[int]
    rows: list[list[int]]
    coef: list[list[float]]
    b: list[float]
    row_owner: list[int]
    row_name: list[str]
    row_period: list[int]

    def row(self, agent: int, name: str, period: int, rhs: float) -> int:
        self.b.append(rhs)
        self.row_owner.append(agent)
        self.row_name.append(name)
        self.row_period.append(period)
        return len(self.b) - 1

    def var(
        self,
        agent: int,
        kind: int,
        period: int,
        bounds: tuple[float, float],
        cost: float,
        entries: list[tuple[int, float]],
    ) -> int:
        self.lo.append(bounds[0])
        self.hi.append(bounds[1])
        self.cost.append(cost)
        self.owner.append(agent)
        self.kind.append(kind)
        self.period.append(period)
        self.rows.append([r for r, _ in entries] + [-1] * (K - len(entries)))
        self.coef.append([c for _, c in entries] + [0.0] * (K - len(entries)))
        return len(self.lo) - 1


class LocalProblems:
    """The subproblems of a set of agents (one or all), with their warm-start multipliers.

    `sell_at[a]` / `buy_at[a]`: positions in the variable vector of agent a's copies of its
    sales / purchases, (links, periods) in the record's link order."""

    def __init__(self, records: Sequence[AgentRecord]) -> None:
        self.records = tuple(records)
        build = _Builder([], [], [], [], [], [], [], [], [], [], [], [])
        self.sell_at: list[IntArray] = []
        self.buy_at: list[IntArray] = []
        self.balance_row: list[IntArray] = []
        self.resale_row: list[IntArray | None] = []
        for a, record in enumerate(self.records):
            _add_agent(build, a, record, self)
        self.lo = np.asarray(build.lo, dtype=float)
        self.hi = np.asarray(build.hi, dtype=float)
        self.cost = np.asarray(build.cost, dtype=float)
        self.owner = np.asarray(build.owner, dtype=np.int64)
        self.kind = np.asarray(build.kind, dtype=np.int64)
        self.period = np.asarray(build.period, dtype=np.int64)
        self.rows = np.asarray(build.rows, dtype=np.int64).reshape(-1, K)
        self.coef = np.asarray(build.coef, dtype=float).reshape(-1, K)
        self.b = np.asarray(build.b, dtype=float)
        self.row_owner = np.asarray(build.row_owner, dtype=np.int64)
        self.row_name = np.asarray(build.row_name, dtype=object)
        self.row_period = np.asarray(build.row_period, dtype=np.int64)
        self._check_empty_rows()
        self._prepare_newton()
        self.mu = np.zeros(self.b.size)
        self.newton_steps = 0
        self.fallbacks = 0
        """Subproblems handed to HiGHS because their Newton steps did not settle."""

    @property
    def n_agents(self) -> int:
        return len(self.records)

    # --- set-up ---------------------------------------------------------------------

    def _check_empty_rows(self) -> None:
        """A row with no variable must have nothing to balance (else the agent cannot be
        balanced, whatever the others do); such rows are kept out of the Newton system by
        giving them a unit diagonal."""
        held = np.zeros(self.b.size, dtype=bool)
        held[self.rows[self.rows >= 0]] = True
        stuck = ~held & (np.abs(self.b) > 1e-12)
        if stuck.any():
            r = int(np.flatnonzero(stuck)[0])
            agent = self.records[int(self.row_owner[r])]
            period = int(self.row_period[r])
            reason = f"{self.b[r]:.6g} kW in its {self.row_name[r]} row and nothing to balance it"
            raise InfeasibleMarketError(
                f"peer {agent.name!r} cannot be balanced in period {period}: {reason}",
                peer=agent.name,
                period=period,
                reason=reason,
            )
        self.empty_row = ~held

    def _prepare_newton(self) -> None:
        """Where each variable's contribution to its agent's Hessian block goes (static)."""
        m_of = np.bincount(self.row_owner, minlength=self.n_agents).astype(np.int64)
        first_row = np.concatenate([[0], np.cumsum(m_of)[:-1]]).astype(np.int64)
        local = np.arange(self.b.size) - first_row[self.row_owner]
        h_offset = np.concatenate([[0], np.cumsum(m_of**2)[:-1]]).astype(np.int64)
        self.m_of, self.first_row, self.local_row = m_of, first_row, local
        self.h_size = int((m_of**2).sum())
        valid = self.rows >= 0
        pair = valid[:, :, None] & valid[:, None, :]
        safe = np.maximum(self.rows, 0)
        m_var = m_of[self.owner][:, None, None]
        keys = (
            h_offset[self.owner][:, None, None]
            + local[safe][:, :, None] * m_var
            + local[safe][:, None, :]
        )
        self.pair_mask = pair
        self.pair_keys = keys[pair]
        self.pair_coef = (self.coef[:, :, None] * self.coef[:, None, :])[pair]
        self.pair_var = np.broadcast_to(np.arange(self.owner.size)[:, None, None], pair.shape)[pair]
        self.entry_mask = valid
        self.entry_rows = self.rows[valid]
        self.entry_var = np.broadcast_to(np.arange(self.owner.size)[:, None], valid.shape)[valid]
        self.entry_coef = self.coef[valid]
        # Diagonal of each block, for rows without a variable (unit diagonal).
        self.diag_keys = h_offset[self.row_owner] + local * m_of[self.row_owner] + local
        self.groups: list[tuple[IntArray, int, IntArray, IntArray]] = []
        for m in np.unique(m_of[m_of > 0]):
            agents = np.flatnonzero(m_of == m)
            cells = (h_offset[agents][:, None] + np.arange(m * m)[None, :]).ravel()
            rows = (first_row[agents][:, None] + np.arange(m)[None, :]).ravel()
            self.groups.append((agents, int(m), cells, rows))
        scale = np.abs(np.where(np.isfinite(self.lo), self.lo, 0.0))
        scale = np.maximum(scale, np.abs(np.where(np.isfinite(self.hi), self.hi, 0.0)))
        agent_scale = np.zeros(self.n_agents)
        np.maximum.at(agent_scale, self.owner, scale)
        np.maximum.at(agent_scale, self.row_owner, np.abs(self.b))
        self.tolerance = TOLERANCE * (1.0 + agent_scale)

    # --- the solve ------------------------------------------------------------------

    def primal(self, mu: FloatArray, q: FloatArray, g: FloatArray) -> tuple[FloatArray, FloatArray]:
        """w(mu) and A' mu."""
        padded = np.append(mu, 0.0)
        at_mu = (self.coef * padded[self.rows]).sum(axis=1)
        return np.clip((at_mu - g) / q, self.lo, self.hi), at_mu

    def residual(self, w: FloatArray) -> FloatArray:
        """b - A w, one per row."""
        weights = self.entry_coef * w[self.entry_var]
        return self.b - np.bincount(self.entry_rows, weights=weights, minlength=self.b.size)

    def dual_value(self, mu: FloatArray, q: FloatArray, g: FloatArray) -> FloatArray:
        """Each agent's dual function at mu (it is maximised)."""
        w, at_mu = self.primal(mu, q, g)
        per_var = (0.5 * q * w - at_mu + g) * w
        value = np.bincount(self.owner, weights=per_var, minlength=self.n_agents)
        rows = np.bincount(self.row_owner, weights=mu * self.b, minlength=self.n_agents)
        return np.asarray(value + rows, dtype=float)

    def solve(self, q: FloatArray, g: FloatArray) -> FloatArray:
        """Every agent's optimum of min sum c w + q/2 w^2 ... written as g w + q/2 w^2 (g = c
        - q v), warm-started from the last multipliers; returns w and keeps the multipliers
        in `mu`. Raises `SolverError` naming an agent whose subproblem does not settle."""
        mu = self.mu.copy()
        for step in range(MAX_NEWTON + MAX_DAMPED):
            w, at_mu = self.primal(mu, q, g)
            resid = np.where(self.empty_row, 0.0, self.residual(w))
            error = np.zeros(self.n_agents)
            np.maximum.at(error, self.row_owner, np.abs(resid))
            active = error > self.tolerance
            if not active.any():
                self.mu = mu
                return w
            self.newton_steps += 1
            kappa = KAPPA if step < MAX_NEWTON else KAPPA_DAMPED
            delta = self._newton_direction(q, g, at_mu, resid, kappa)
            mu = self._line_search(mu, delta, resid, active, q, g)
        # The few agents whose Newton steps cycle between active sets: exactly, by HiGHS.
        for a in np.flatnonzero(active):
            self.fallbacks += 1
            w, mu = self._exact(int(a), q, g, w, mu)
        self.mu = mu
        return w

    def _exact(
        self, a: int, q: FloatArray, g: FloatArray, w: FloatArray, mu: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Agent `a`'s subproblem solved by HiGHS's QP solver (its own block only)."""
        cols = np.flatnonzero(self.owner == a)
        rows = np.flatnonzero(self.row_owner == a)
        w, mu = w.copy(), mu.copy()
        x, y = solve_qp(
            q[cols],
            g[cols],
            self.lo[cols],
            self.hi[cols],
            self.rows[cols] - (rows[0] if rows.size else 0),
            self.coef[cols],
            self.b[rows],
        )
        if x is None:
            raise SolverError(
                f"the local problem of agent {self.records[a].name!r} has no solution "
                "(is it feasible on its own?)",
                status="local_problem",
            )
        w[cols] = np.clip(x, self.lo[cols], self.hi[cols])
        mu[rows] = y
        return w, mu

    def _newton_direction(
        self, q: FloatArray, g: FloatArray, at_mu: FloatArray, resid: FloatArray, kappa: float
    ) -> FloatArray:
        raw = (at_mu - g) / q
        free = (raw > self.lo) & (raw < self.hi)
        d = np.where(free, 1.0, kappa) / q
        h = np.bincount(
            self.pair_keys, weights=d[self.pair_var] * self.pair_coef, minlength=self.h_size
        )
        h[self.diag_keys[self.empty_row]] = 1.0
        delta = np.zeros(self.b.size)
        for agents, m, cells, rows in self.groups:
            blocks = h[cells].reshape(agents.size, m, m)
            rhs = resid[rows].reshape(agents.size, m, 1)
            delta[rows] = np.linalg.solve(blocks, rhs).ravel()
        return delta

    def _line_search(
        self,
        mu: FloatArray,
        delta: FloatArray,
        resid: FloatArray,
        active: BoolArray,
        q: FloatArray,
        g: FloatArray,
    ) -> FloatArray:
        """Armijo backtracking on each agent's dual, active agents only."""
        phi0 = self.dual_value(mu, q, g)
        slope = np.bincount(self.row_owner, weights=resid * delta, minlength=self.n_agents)
        step = np.where(active, 1.0, 0.0)
        pending = active.copy()
        slack = 1e-13 * (1.0 + np.abs(phi0))
        for _ in range(MAX_HALVINGS):
            trial = mu + step[self.row_owner] * delta
            phi = self.dual_value(trial, q, g)
            ok = phi >= phi0 + 1e-4 * step * slope - slack
            pending &= ~ok
            if not pending.any():
                break
            step = np.where(pending, step / 2, step)
        return mu + step[self.row_owner] * delta


def _add_agent(build: _Builder, a: int, r: AgentRecord, into: LocalProblems) -> None:
    """The variables and rows of agent `a` (module docstring)."""
    T, dt = r.periods, r.period_hours
    inf = np.inf
    balance = np.array([build.row(a, "balance", t, float(r.load_kw[t])) for t in range(T)])
    resale = (
        np.array([build.row(a, "no-resale", t, 0.0) for t in range(T)]) if r.resale_rule else None
    )
    into.balance_row.append(balance)
    into.resale_row.append(resale)

    def on_supply(t: int, sign: float) -> list[tuple[int, float]]:
        out = [(int(balance[t]), sign)]
        if resale is not None:
            out.append((int(resale[t]), -sign))
        return out

    if r.min_kw is not None and r.max_kw is not None and r.offer_per_kwh is not None:
        for t in range(T):
            build.var(
                a,
                VarKind.GENERATION,
                t,
                (float(r.min_kw[t]), float(r.max_kw[t])),
                dt * float(r.offer_per_kwh[t]),
                on_supply(t, 1.0),
            )
    if r.storage is not None:
        _add_storage(build, a, r, balance, resale)
    for blk in range(r.flexible_max_kw.shape[0]):
        for t in range(T):
            build.var(
                a,
                VarKind.FLEXIBLE,
                t,
                (0.0, float(r.flexible_max_kw[blk, t])),
                -dt * float(r.flexible_price_per_kwh[blk, t]),
                [(int(balance[t]), -1.0)],
            )
    if r.buy_price_per_kwh is not None:
        for t in range(T):
            build.var(
                a,
                VarKind.ABSORPTION,
                t,
                (0.0, inf),
                -dt * float(r.buy_price_per_kwh[t]),
                [(int(balance[t]), -1.0)],
            )
    sells = np.zeros((r.sells.size, T), dtype=np.int64)
    for k in range(r.sells.size):
        for t in range(T):
            entries = [(int(balance[t]), -1.0)]
            if resale is not None:
                entries.append((int(resale[t]), 1.0))
            cost = dt * float(r.sell_cost_per_kwh[k, t])
            sells[k, t] = build.var(a, VarKind.SELL, t, (0.0, inf), cost, entries)
    buys = np.zeros((r.buys.size, T), dtype=np.int64)
    for k in range(r.buys.size):
        for t in range(T):
            buys[k, t] = build.var(a, VarKind.BUY, t, (0.0, inf), 0.0, [(int(balance[t]), 1.0)])
    into.sell_at.append(sells)
    into.buy_at.append(buys)
    if resale is not None:
        for t in range(T):
            build.var(a, VarKind.RESALE_SLACK, t, (0.0, inf), 0.0, [(int(resale[t]), 1.0)])


def _add_storage(
    build: _Builder, a: int, r: AgentRecord, balance: IntArray, resale: IntArray | None
) -> None:
    """Charge, discharge and state of charge of the agent's battery (Eq. 7)."""
    if r.storage is None:
        return
    u, T, dt = r.storage, r.periods, r.period_hours
    rows = [build.row(a, "storage", t, u.initial_kwh if t == 0 else 0.0) for t in range(T)]
    final = build.row(a, "final-soc", T - 1, u.final_kwh)
    for t in range(T):
        build.var(
            a,
            VarKind.CHARGE,
            t,
            (0.0, u.power_kw),
            0.0,
            [(int(balance[t]), -1.0), (rows[t], -dt * u.charge_efficiency)],
        )
        entries = [(int(balance[t]), 1.0), (rows[t], dt / u.discharge_efficiency)]
        if resale is not None:
            entries.append((int(resale[t]), -1.0))
        build.var(a, VarKind.DISCHARGE, t, (0.0, u.power_kw), 0.0, entries)
        soc = [(rows[t], 1.0)]
        soc.append((rows[t + 1], -1.0) if t + 1 < T else (final, 1.0))
        build.var(a, VarKind.SOC, t, (0.0, u.capacity_kwh), 0.0, soc)
    build.var(a, VarKind.FINAL_SLACK, T - 1, (0.0, np.inf), 0.0, [(final, -1.0)])
