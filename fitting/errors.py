"""Fitting errors: each says what is wrong in the user's names and units."""

from tidesim.core.errors import TidesimError

__all__ = ["FitError", "BoundsError", "FitDiverged", "FitWarning"]


class FitError(TidesimError, ValueError):
    """A fit cannot run as asked (its data, loss or settings)."""


class BoundsError(FitError):
    """Parameter bounds that are empty, reversed, in the wrong unit or of the wrong sign."""


class FitDiverged(FitError):
    """Every start of a fit turned NaN/inf; the message lists what happened to each."""


class FitWarning(UserWarning):
    """A fit ran, but something in it deserves a look: a value on its bound, a stage that fits poorly."""
