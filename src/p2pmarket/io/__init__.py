"""Edges that read and write files: scenario files and result tables."""

from p2pmarket.io.scenario_files import dump_scenario, load_scenario, read_scenario_dict

__all__ = ["dump_scenario", "load_scenario", "read_scenario_dict"]
