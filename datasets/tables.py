"""Published plasticity data shipped with tidesim (``data/plasticity/PROVENANCE.md`` says where
every number comes from)."""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["plasticity_tables", "plasticity_table"]


def _folder():
    return resources.files("tidesim.datasets") / "data" / "plasticity"


def plasticity_tables() -> list[str]:
    """Names of the shipped plasticity tables (e.g. ``"sjostrom2001_frequency"``)."""
    return sorted(p.name[:-4] for p in _folder().iterdir() if p.name.endswith(".csv"))


def plasticity_table(name: str) -> pd.DataFrame:
    """A shipped table as a DataFrame: ``delta_t_ms`` is post minus pre (ms), ``dw_rel`` the
    relative weight change, ``dw_sem`` its standard error (see PROVENANCE.md)."""
    if name not in plasticity_tables():
        raise ValueError(f"no plasticity table {name!r}; shipped: {', '.join(plasticity_tables())}")
    with resources.as_file(_folder() / f"{name}.csv") as path:
        return pd.read_csv(path)
