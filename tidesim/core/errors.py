"""tidesim's exceptions: each says what went wrong and where, in the user's names and units."""

from __future__ import annotations


class TidesimError(Exception):
    """Base class of every error tidesim raises on purpose."""


class ModelError(TidesimError, ValueError):
    """A model definition is malformed (equations, threshold, reset, refractory)."""


class EquationSyntaxError(ModelError):
    """An equation or code line cannot be parsed; the message names the line."""


class UnitMismatchError(ModelError):
    """Units in an equation or a given value are inconsistent; the message names the term."""


class UnknownIdentifierError(ModelError):
    """An equation, threshold or reset uses a name that is not defined anywhere."""


class MissingParameterError(ModelError):
    """A parameter has no value: not in the model's defaults, ``params`` or ``inputs``."""


class ShapeError(TidesimError, ValueError):
    """A parameter or input tensor has the wrong shape; the message names the expected shape."""


class SimulationError(TidesimError, RuntimeError):
    """A simulation failed while running."""


class NumericalInstabilityError(SimulationError):
    """A state variable became NaN or infinite (the message names variable, neuron and time).

    ``.variable``, ``.neuron`` and ``.step`` hold the same facts for programs (e.g. a fit that
    drops the start this neuron belongs to and goes on with the others).
    """

    def __init__(self, message: str, variable: str | None = None, neuron: int | None = None,
                 step: int | None = None):
        super().__init__(message)
        self.variable, self.neuron, self.step = variable, neuron, step


class BackendError(TidesimError, RuntimeError):
    """A reference simulator (Brian2) could not run the model."""


class Unsupported(SimulationError, NotImplementedError):
    """An engine cannot run this simulation; the message says why. With ``engine="auto"`` the next
    engine in the table runs it instead; a named engine that refuses raises this error."""


class NetworkError(TidesimError, ValueError):
    """A network built wrongly: unknown populations, shapes, delays."""


class InputError(TidesimError, ValueError):
    """A value given to a simulation cannot be used: wrong type, not finite, a dtype or length that
    would give wrong results. The message names the value."""


class InsufficientMemoryError(TidesimError, MemoryError):
    """A run would need more memory than the machine has free (checked before anything is allocated)."""
