"""Every file format in one home: scenario files (`scenario_files`), result tables as CSV or
Parquet (`tables`), the files of a run (`results`), output locations (`outputs`), and the one
atomic writer (`atomic`)."""

from p2pmarket.io.scenario_files import (
    dump_scenario,
    load_scenario,
    parse_scenario,
    read_scenario_dict,
)

__all__ = ["dump_scenario", "load_scenario", "parse_scenario", "read_scenario_dict"]
