"""Posterior inference: parameters with uncertainty by neural posterior estimation (the ``sbi`` package).

The steps, each a function or method here:

1. **Prior** from the bounds. sbi works on the unit cube: ``theta_k`` in [0, 1] is parameter
   ``k``'s position between its bounds on the :class:`~tidesim.fitting.ParameterSpace`'s scale,
   ``value = low + (high - low) * theta`` (linear scale) or ``value = low * (high / low) ** theta``
   (log scale: uniform in ``log value``). The prior is ``sbi.utils.BoxUniform(0, 1)`` on it: a
   uniform prior on each parameter's scale, the same points ``ParameterSpace.from_unit`` gives.
2. **Simulations** (:meth:`Simulator.simulate_batch`, ``theta -> x``): many parameter points in one
   batched torch run (every point on every sweep of the protocol, each sweep driven by its recorded
   current, starting from the model's initial values so that one posterior serves every recording
   made with that protocol), chunked to a memory budget; with a ``dask.distributed`` client the
   chunks are tasks (:func:`simulate`). A point whose simulation blows up is left out of training
   (the posterior is then that of the prior restricted to stable points).
3. **Summary statistics** per sweep, computed the same way on simulated and recorded sweeps
   (:func:`summary_statistics`; definitions in :data:`STATISTICS`), after Gaussian recording noise
   (``noise`` V; by default estimated from the recording, :func:`estimate_noise`) is added to the
   simulated voltage. Statistics undefined on a sweep (no or too few spikes) take the out-of-range
   values of :data:`SENTINELS`; statistics that do not vary across the simulations are left out.
4. **Neural posterior estimation** (sbi's ``NPE``, a masked autoregressive flow by default) trained
   once on the simulations: :func:`train` returns an :class:`AmortizedPosterior`, which gives the
   posterior of any recording made with the same protocol without new simulations.
5. **Posterior samples** (:meth:`AmortizedPosterior.fit` -> :class:`~tidesim.fitting.FitResult`
   with ``samples``), credible intervals and regions, and **posterior predictive checks**
   (:func:`predictive_check`): posterior samples simulated on the recording's sweeps and their
   statistics (spike counts, ...) compared with the recording's.

``ts.fit(model, rec, params, method="sbi", n_simulations=..., n_samples=...)`` runs 1-5; its
FitResult's ``best_params`` are the marginal posterior medians. ``fit.save`` keeps the samples
(``samples.csv``) but not the trained estimator: keep the :class:`AmortizedPosterior` to condition
on more recordings.
"""

from tidesim.fitting.sbi_checks import predictive_check
from tidesim.fitting.sbi_posterior import AmortizedPosterior, ConditionedPosterior
from tidesim.fitting.sbi_simulator import Simulator, simulate
from tidesim.fitting.sbi_statistics import (
    SENTINELS,
    STATISTICS,
    credible_intervals,
    estimate_noise,
    from_unit,
    protocol_windows,
    summary_statistics,
    to_unit,
)
from tidesim.fitting.sbi_training import sbi_fit, train

__all__ = ["STATISTICS", "SENTINELS", "summary_statistics", "protocol_windows", "estimate_noise", "Simulator",
           "simulate", "AmortizedPosterior", "ConditionedPosterior", "credible_intervals", "train", "sbi_fit",
           "predictive_check", "to_unit", "from_unit"]
