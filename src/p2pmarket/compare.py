"""Old home of `compare`, kept for one release: use `p2pmarket.app.compare`."""

from p2pmarket.app.compare import Comparison, compare

__all__ = ["Comparison", "compare"]
