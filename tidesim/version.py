"""The version of tidesim (one place: the package metadata and ``tidesim.__version__`` read it)."""

__version__ = "0.1.0"
