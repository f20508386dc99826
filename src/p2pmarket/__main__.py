"""`python -m p2pmarket`: the `p2pmarket` command."""

from p2pmarket.cli.main import main

main()
