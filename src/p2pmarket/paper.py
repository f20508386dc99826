"""Old home of the paper's reproduction, kept for one release: use `p2pmarket.app.paper`."""

from p2pmarket.app.paper import (
    PAPER_CASES,
    PaperCheck,
    Reproduction,
    design_comparison,
    reproduce,
    seventeen_peer_checks,
)

__all__ = [
    "PAPER_CASES",
    "PaperCheck",
    "Reproduction",
    "design_comparison",
    "reproduce",
    "seventeen_peer_checks",
]
