"""The per-link half of edge-consensus ADMM: reconcile a trade's two copies and its price.

Each trade (link l, period t) has a seller's copy xs and a buyer's copy xb; consensus ADMM
(Boyd et al. 2011, section 7.1; for markets Sorin, Bobo & Pinson 2019) keeps per link the
agreed value z, the buyer's scaled dual u (the seller's is -u) and a penalty rho_l. After
every agent has solved its own problem against its targets

    seller: v_s = z + u,     buyer: v_b = z - u,

the two ends of the link, each holding both copies after one exchange of messages, compute
the same update (nobody else takes part):

    xs^ = alpha xs + (1 - alpha) z,   xb^ = alpha xb + (1 - alpha) z     (over-relaxation)
    z'  = (xs^ + xb^) / 2
    u'  = u + (xb^ - z')
    price' = rho u'                      (currency/kWh: what the buyer pays the seller)

Residuals per link: primal r_l = ||(xs - z', xb - z')||, dual s_l = rho sqrt(2) ||z' - z||.
Residual balancing (He, Yang & Wang 2000; Boyd et al. section 3.4.1), per link and every
`balance_every` iterations: rho_l <- tau rho_l where r_l > mu s_l, rho_l / tau where s_l >
mu r_l (u rescaled so that the price stays). The primal residual is measured in units of
the energy tolerance (kW over a period), the dual one in units of `balance_weight` times
the price tolerance: the comparison of a kW with a currency/kWh needs a scale, and this
one is stated in the stopping rule's own terms.

A trade is agreed when its two copies differ by at most `energy_tolerance_kwh` (|xs - xb|
dt, and each copy from the value z agreed before them: two copies that move together are
still negotiating) and its price moved by at most `price_tolerance_per_kwh`, for
`agreed_after` iterations in a row (Le Goff Latimier et al. 2019: each trade is ratified on
its own residuals while the others keep negotiating).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from p2pmarket.core.scenario import FloatArray
from p2pmarket.errors import OptionError

__all__ = ["AdmmOptions", "LinkState", "LinkUpdate", "initial_links", "reconcile"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class AdmmOptions:
    """How the ADMM market negotiates (a frozen value, validated on creation).

    - `max_iterations`: the cap (default 5,000); what is not agreed by then is reported.
    - `rho`: the initial penalty of every link, currency/kWh per kW of disagreement.
    - `alpha`: over-relaxation (1 = none, the default; 1.5-1.8 is the literature's usual
      range; with residual balancing it cost iterations on 6 of the 7 benchmark markets,
      docs/admm.md "Which anti-tail measures mattered").
    - `proximal`: delta of the proximal term on every agent's own variables, in `rho`'s
      units (must be > 0: it makes each subproblem strictly convex; smaller takes fewer
      iterations, each dearer: 1e-5 measured best of 1e-8 to 1e-2, docs/admm.md).
    - `balance`: residual balancing of rho per link, with `mu` and `tau`, every
      `balance_every` iterations; it stops after `balance_until` iterations (None: never),
      after which rho is fixed and the usual convergence guarantee of ADMM holds.
      `balance_weight`: the dual residual is measured in units of `balance_weight` times
      the price tolerance, the primal one in units of the energy tolerance (0.03: the best
      of 0.005-0.05 measured on the benchmark markets, docs/admm.md); `rho_range`: rho
      stays within this factor of its initial value either way.
    - `energy_tolerance_kwh`, `price_tolerance_per_kwh`, `agreed_after`: the stopping rule.
    """

    max_iterations: int = 5_000
    rho: float = 0.01
    alpha: float = 1.0
    proximal: float = 1e-5
    balance: bool = True
    mu: float = 10.0
    tau: float = 2.0
    balance_every: int = 10
    balance_weight: float = 0.03
    balance_until: int | None = None
    rho_range: float = 1e4
    energy_tolerance_kwh: float = 1e-3
    price_tolerance_per_kwh: float = 1e-4
    agreed_after: int = 3

    def __post_init__(self) -> None:
        """Refuse, naming the option, what the method cannot run with (`OptionError`)."""
        _whole("max_iterations", self.max_iterations, 1, 10_000_000)
        _whole("balance_every", self.balance_every, 1, 10_000_000)
        _whole("agreed_after", self.agreed_after, 1, 10_000_000)
        if self.balance_until is not None:
            _whole("balance_until", self.balance_until, 0, 10_000_000)
        for name, low, high in (
            ("rho", 0.0, math.inf),
            ("proximal", 0.0, math.inf),
            ("energy_tolerance_kwh", 0.0, math.inf),
            ("price_tolerance_per_kwh", 0.0, math.inf),
        ):
            _positive(name, getattr(self, name), low, high)
        _positive("alpha", self.alpha, 0.0, 2.0)
        _positive("mu", self.mu, 1.0, math.inf)
        _positive("tau", self.tau, 1.0, math.inf)
        _positive("rho_range", self.rho_range, 1.0, math.inf)
        _positive("balance_weight", self.balance_weight, 0.0, math.inf)


def _whole(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise OptionError(name, f"must be a whole number from {low} to {high}, got {value!r}")


def _positive(name: str, value: object, low: float, high: float) -> None:
    """A finite number strictly above `low` and strictly below `high`."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (math.isfinite(float(value)) and low < float(value) < high):  # type: ignore[arg-type]
        raise OptionError(name, f"must be a number above {low:g} and below {high:g}, got {value!r}")


@dataclass(frozen=True)
class LinkState:
    """The negotiation state of a set of links, (links, periods) unless said."""

    z: FloatArray
    u: FloatArray
    rho: FloatArray
    """(links,)."""
    price: FloatArray
    """Currency/kWh: rho u."""
    agreed_for: IntArray
    """Iterations in a row each trade has met the stopping rule."""

    def targets(self) -> tuple[FloatArray, FloatArray]:
        """(seller's, buyer's) target for the next subproblems."""
        return self.z + self.u, self.z - self.u


@dataclass(frozen=True)
class LinkUpdate:
    """A reconciled set of links: the new state, and each link's residuals measured against
    the tolerances (dimensionless; `primal`, `dual`, (links,)) and raw (`gap_kwh`: the two
    copies' largest difference, `price_move`: the price's largest move, (links,))."""

    state: LinkState
    primal: FloatArray
    dual: FloatArray
    gap_kwh: FloatArray
    price_move: FloatArray


def initial_links(n_links: int, periods: int, options: AdmmOptions) -> LinkState:
    """Nothing agreed: z = u = 0, rho the initial penalty."""
    zeros = np.zeros((n_links, periods))
    return LinkState(
        z=zeros,
        u=zeros.copy(),
        rho=np.full(n_links, float(options.rho)),
        price=zeros.copy(),
        agreed_for=np.zeros((n_links, periods), dtype=np.int64),
    )


def reconcile(
    state: LinkState,
    xs: FloatArray,
    xb: FloatArray,
    iteration: int,
    period_hours: float,
    options: AdmmOptions,
) -> LinkUpdate:
    """One link update (module docstring) from both copies, (links, periods). Elementwise
    per link: the same numbers whether it runs for every link at once or at one end of one
    link."""
    alpha = options.alpha
    xs_hat = alpha * xs + (1.0 - alpha) * state.z
    xb_hat = alpha * xb + (1.0 - alpha) * state.z
    z = 0.5 * (xs_hat + xb_hat)
    u = state.u + (xb_hat - z)
    rho = state.rho
    price = rho[:, None] * u
    gap = _copy_gap(xs, xb, state.z) * period_hours
    move = np.abs(price - state.price)
    ok = (gap <= options.energy_tolerance_kwh) & (move <= options.price_tolerance_per_kwh)
    agreed_for = np.where(ok, state.agreed_for + 1, 0)
    scale_e = options.energy_tolerance_kwh / period_hours
    scale_p = options.price_tolerance_per_kwh * options.balance_weight
    primal = np.sqrt(((xs - z) ** 2 + (xb - z) ** 2).sum(axis=1)) / scale_e
    dual = rho * np.sqrt(2.0 * ((z - state.z) ** 2).sum(axis=1)) / scale_p
    rho_new = rho
    if options.balance and _balancing(iteration, options):
        up = primal > options.mu * dual
        down = dual > options.mu * primal
        factor = np.where(up, options.tau, np.where(down, 1.0 / options.tau, 1.0))
        low, high = options.rho / options.rho_range, options.rho * options.rho_range
        rho_new = np.clip(rho * factor, low, high)
        u = u * (rho / rho_new)[:, None]
    return LinkUpdate(
        state=LinkState(z=z, u=u, rho=rho_new, price=price, agreed_for=agreed_for),
        primal=primal,
        dual=dual,
        gap_kwh=gap.max(axis=1, initial=0.0),
        price_move=move.max(axis=1, initial=0.0),
    )


def _copy_gap(xs: FloatArray, xb: FloatArray, z: FloatArray) -> FloatArray:
    """How far apart a trade's two copies and the value agreed before them are (kW): the
    copies must agree with each other and with where the trade stood, or two copies that
    drift together would pass for agreement while the trade is still moving."""
    return np.maximum(np.abs(xs - xb), np.maximum(np.abs(xs - z), np.abs(xb - z)))


def _balancing(iteration: int, options: AdmmOptions) -> bool:
    """Whether rho is rebalanced after `iteration` (counted from 1)."""
    if options.balance_until is not None and iteration > options.balance_until:
        return False
    return iteration % options.balance_every == 0
