"""`python -m codit` is the same as the `codit` command."""

from codit.cli import main

main()
