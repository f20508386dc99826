"""The ADMM market with every agent in a process of its own (multiprocessing queues, spawn)
gives the iterates of the vectorised in-process method, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import p2pmarket
from p2pmarket.core.designs import design_network, peer_data
from p2pmarket.core.solve.admm import AdmmOptions, admm_report, agent_records, negotiate
from p2pmarket.runners.admm_processes import AdmmProcesses, negotiate_in_processes
from p2pmarket.types import Design, Objective


@pytest.mark.parametrize("design", [Design.COMMUNITY])
def test_processes_give_the_same_iterates(design: Design) -> None:
    scenario = p2pmarket.cases.load("five-peer-case-2")
    data = peer_data(scenario)
    net = design_network(scenario, data, design, Objective.SYSTEM_COST, False)
    records = agent_records(scenario, data, net, Objective.SYSTEM_COST)
    options = AdmmOptions(max_iterations=40)
    here = negotiate(records, net.n_links, options)
    apart = negotiate_in_processes(records, net.n_links, options)
    assert apart.iterations == here.iterations == 40
    for name in ("xs", "xb"):
        np.testing.assert_array_equal(getattr(apart, name), getattr(here, name))
    for name in ("z", "u", "rho", "price", "agreed_for"):
        np.testing.assert_array_equal(getattr(apart.state, name), getattr(here.state, name))
    np.testing.assert_array_equal(apart.solutions.balance_dual, here.solutions.balance_dual)
    np.testing.assert_array_equal(apart.solutions.generation, here.solutions.generation)
    assert (apart.messages, apart.message_bytes) == (here.messages, here.message_bytes)
    np.testing.assert_allclose(apart.history["cost"], here.history["cost"], rtol=1e-12)
    for name in ("not_agreed", "max_gap_kwh", "rho_min", "rho_max"):
        np.testing.assert_array_equal(apart.history[name], here.history[name])
    np.testing.assert_allclose(
        apart.history["rho_geomean"], here.history["rho_geomean"], rtol=1e-12
    )


def test_processes_clear_a_market() -> None:
    """As a clearing method: the 5-peer case to agreement, the central optimum."""
    scenario = p2pmarket.cases.load("five-peer-case-1")
    central = p2pmarket.clear(scenario)
    result = p2pmarket.clear(scenario, method=AdmmProcesses())
    report = admm_report(result)
    assert report.converged and report.runner == "processes"
    assert result.objective == pytest.approx(central.objective, rel=1e-4)
