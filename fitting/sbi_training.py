"""Training a neural posterior estimator on batched simulations (see :mod:`tidesim.fitting.sbi`)."""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from tidesim.fitting.data import FitData, prepare
from tidesim.fitting.errors import BoundsError, FitError
from tidesim.fitting.parameters import ParameterSpace
from tidesim.fitting.sbi_posterior import AmortizedPosterior
from tidesim.fitting.sbi_simulator import Simulator, simulate
from tidesim.fitting.sbi_statistics import STATISTICS, estimate_noise

__all__ = ["train", "sbi_fit"]

def train(
    model,
    protocol: Any,
    params: Mapping[str, Any],
    n_simulations: int = 2000,
    input: str = "I",
    voltage: str = "v",
    dt: float | None = None,
    window: tuple[float, float] | None = None,
    noise: float | str = "auto",
    statistics: Sequence[str] = tuple(STATISTICS),
    density_estimator: str = "maf",
    hidden_features: int = 32,
    num_transforms: int = 3,
    training_batch_size: int = 128,
    learning_rate: float = 1e-3,
    max_epochs: int = 300,
    stop_after_epochs: int = 15,
    seed: int | None = 0,
    client: Any = None,
    chunk: int | None = None,
    engine: str = "auto",
    progress: bool = False,
) -> AmortizedPosterior:
    """Simulate ``n_simulations`` prior draws on ``protocol``'s sweeps and train a posterior estimator.

    Parameters
    ----------
    model
        A :class:`~tidesim.NeuronModel`; parameters not in ``params`` keep its values.
    protocol
        A Recording (or list of them, or :class:`FitData`) whose injected currents are the stimulus;
        any recording made with the same currents can then be conditioned on.
    params
        ``{name: (low, high)}`` or ``(low, high, "log")`` bounds, SI or quantities: the prior is
        uniform between them on each parameter's scale (log scale: uniform in the logarithm).
    n_simulations
        Simulations from the prior to train on (a few thousand for 2-4 parameters).
    dt, window
        Integration step (s; a whole multiple of the recording's sampling interval) and the part
        of each sweep used (s).
    noise
        Recording noise (V, standard deviation) added to the simulated voltage before the
        statistics; ``"auto"``: estimated from ``protocol``'s voltage (:func:`estimate_noise`).
    statistics
        Summary statistics per sweep (:data:`STATISTICS`).
    density_estimator, hidden_features, num_transforms
        sbi's estimator (``"maf"``, ``"nsf"``, ``"mdn"``) and its size.
    training_batch_size, learning_rate, max_epochs, stop_after_epochs
        sbi's training loop (Adam; stops when the validation loss has not improved for
        ``stop_after_epochs`` epochs, or after ``max_epochs``).
    seed
        Seeds the prior draws, the simulated noise, the training and (by default) the sampling.
    client, chunk
        A ``dask.distributed`` client to run the simulation chunks on, and points per chunk.
    """
    # sbi (with its own heavy imports) loads only when a posterior is trained
    from sbi.inference import NPE
    from sbi.neural_nets import posterior_nn
    from sbi.utils import BoxUniform

    if isinstance(n_simulations, bool) or not isinstance(n_simulations, (int, np.integer)) or n_simulations < 50:
        raise FitError(f"n_simulations must be a whole number of at least 50 (a few thousand for 2-4 "
                       f"parameters), got {n_simulations!r}")
    if not isinstance(params, Mapping) or not params:
        raise BoundsError("method='sbi' needs bounds for the parameters to infer, params={name: (low, high)} "
                          f"(SI or quantities), got {params!r}; the prior is uniform between them")
    space = ParameterSpace(model, params)
    data = protocol if isinstance(protocol, FitData) else prepare(protocol, dt=dt, window=window)
    if isinstance(noise, str):
        if noise != "auto":
            raise FitError(f"noise must be a standard deviation in volts or 'auto', got {noise!r}")
        noise = estimate_noise(data)
    simulator = Simulator(model, data, space, input=input, voltage=voltage, noise=float(noise),
                          statistics=statistics, engine=engine)
    d = len(space)
    gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
    theta = torch.rand(n_simulations, d, generator=gen, dtype=torch.float64)
    t0, c0 = time.perf_counter(), time.process_time()
    x = simulate(simulator, theta, seed=seed, chunk=chunk, client=client, progress=progress)
    t_sim, c_sim = time.perf_counter() - t0, time.process_time() - c0
    valid = torch.isfinite(x).all(1)
    if int(valid.sum()) < 50:
        raise FitError(f"only {int(valid.sum())} of {n_simulations} simulations ran without blowing up; "
                       "narrow the bounds to a region where the model is stable")
    xv = x[valid]
    x_mean, x_std = xv.mean(0), xv.std(0)
    keep = torch.nonzero(x_std > 1e-9 * xv.abs().amax(0).clamp_min(1e-30)).flatten()
    if len(keep) == 0:
        raise FitError("every summary statistic is the same in every simulation: the parameters within these "
                       "bounds do not change what the protocol shows")
    t1, c1 = time.perf_counter(), time.process_time()
    quiet = contextlib.nullcontext() if progress else contextlib.redirect_stdout(io.StringIO())
    with torch.random.fork_rng(), quiet, warnings.catch_warnings():
        # spike statistics with sentinels (a latency of "the whole window" for silent sweeps) look like
        # outliers to sbi's z-scoring check; they are far fewer than the distinct values it worries about
        warnings.filterwarnings("ignore", message=".*extreme outliers.*")
        if seed is not None:
            torch.manual_seed(int(seed))
        prior = BoxUniform(torch.zeros(d), torch.ones(d))
        builder = posterior_nn(model=density_estimator, hidden_features=hidden_features,
                               num_transforms=num_transforms)
        inference = NPE(prior=prior, density_estimator=builder, show_progress_bars=progress,
                        tracker=_NoTracker())  # sbi's default writes TensorBoard logs into ./sbi-logs
        inference.append_simulations(theta[valid].float(), xv[:, keep].float())
        estimator = inference.train(training_batch_size=training_batch_size, learning_rate=learning_rate,
                                    max_num_epochs=max_epochs, stop_after_epochs=stop_after_epochs)
        posterior = inference.build_posterior(estimator)
    t_train, c_train = time.perf_counter() - t1, time.process_time() - c1
    summary = inference.summary
    info = {"n_simulations": int(n_simulations), "invalid_simulations": int((~valid).sum()),
            "simulation_seconds": t_sim, "training_seconds": t_train,
            "simulation_cpu_seconds": c_sim, "training_cpu_seconds": c_train,
            "epochs": int(summary["epochs_trained"][-1]),
            "best_validation_loss": float(summary["best_validation_loss"][-1]),
            "density_estimator": density_estimator, "statistics_used": [simulator.names[i] for i in keep.tolist()],
            "validation_loss": [float(v) for v in summary["validation_loss"]]}
    return AmortizedPosterior(posterior, simulator, keep, x_mean, x_std, info)


class _NoTracker:
    """An sbi training tracker that keeps nothing (sbi's own summary holds the loss curves)."""

    log_dir = None

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def add_figure(self, name: str, figure: Any, step: int | None = None) -> None:
        pass

    def flush(self) -> None:
        pass


def sbi_fit(model, recordings: Any, params: Mapping[str, Any], n_simulations: int = 2000, n_samples: int = 1000,
            seed: int | None = 0, window: tuple[float, float] | None = None, point: str = "median",
            **options: Any):
    """Train on ``recordings``' protocol (:func:`train`, ``options`` go there) and condition on them:
    what ``ts.fit(..., method="sbi")`` runs. Returns a FitResult with posterior samples."""
    amortized = train(model, recordings, params, n_simulations=n_simulations, seed=seed, window=window, **options)
    return amortized.fit(recordings, n_samples=n_samples, seed=seed, window=window, point=point)
