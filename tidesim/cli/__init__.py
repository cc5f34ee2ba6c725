"""The command line: ``tidesim models``, ``tidesim validate MODEL``, ``tidesim fit FILE``, ``tidesim demo``."""

from tidesim.cli.main import main

__all__ = ["main"]
