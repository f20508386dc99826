"""Old home of the result tables, kept for one release: use `p2pmarket.io.tables`."""

from p2pmarket.io.tables import (
    FORMATS,
    MANIFEST,
    peer_totals,
    read_table,
    read_tables,
    result_tables,
    write_table,
    write_tables,
)

__all__ = [
    "FORMATS",
    "MANIFEST",
    "peer_totals",
    "read_table",
    "read_tables",
    "result_tables",
    "write_table",
    "write_tables",
]
