"""Save pandapower's shipped LV feeders as pandapower JSON (a maintainer's tool, not part of
the package).

pandapower 3.5.6 builds its Kerber and CIGRE networks with code that fails under pandas 3
(the pandas p2pmarket pins), so the shipped feeder files (`src/p2pmarket/cases/data/feeders`)
are made in two steps (docs/feeder.md, "Shipped feeders"):

1. in an environment with pandapower 3.5.6 and pandas 2.3 (`pip install pandapower==3.5.6`):
   `python tools/save_pandapower_networks.py OUTDIR` writes OUTDIR/NAME.json;
2. in p2pmarket's environment: `python -m p2pmarket.io.pandapower_feeder OUTDIR` converts
   each to a feeder file (YAML and CSV tables) under src/p2pmarket/cases/data/feeders.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandapower as pp
import pandapower.networks as pn

NETWORKS = {
    "kerber-dorfnetz": pn.create_kerber_dorfnetz,
    "kerber-vorstadtnetz": pn.create_kerber_vorstadtnetz_kabel_1,
    "cigre-lv": pn.create_cigre_network_lv,
    "ieee-european-lv": pn.ieee_european_lv_asymmetric,
}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, build in NETWORKS.items():
        pp.to_json(build(), str(out / f"{name}.json"))
        print(f"wrote {out / (name + '.json')}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
