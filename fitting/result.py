"""``FitResult``: the fitted parameters, how the fit went, and checks of the fitted model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from tidesim.analysis import gamma_factor, md_star, normalized_gamma, psth_explained_variance, van_rossum_distance
from tidesim.codegen.brian2_script import export_brian2
from tidesim.core.files import atomic_write, atomic_write_text, check_new, check_writable_dir
from tidesim.core.model import NeuronModel
from tidesim.core.spec import spec_from_json, spec_to_json
from tidesim.core.units import fmt
from tidesim.fitting.baseline import poisson_baseline
from tidesim.fitting.data import FitData, prepare
from tidesim.fitting.errors import FitError
from tidesim.fitting.problem import Problem
from tidesim.fitting.sbi_checks import predictive_check
from tidesim.fitting.sbi_statistics import credible_intervals
from tidesim.fitting.staged import rest_bias
from tidesim.models.nest_export import export_nest
from tidesim.models.neuroml_export import export_neuroml
from tidesim.validation import crossvalidate

__all__ = ["FitResult"]


class FitResult:
    """What :func:`tidesim.fit` found.

    Attributes
    ----------
    best_params : dict
        The fitted parameters, SI units (plus nothing else: fixed values stay in ``model``).
    loss : float
        The best start's final loss.
    start_losses : numpy.ndarray
        ``[n_starts]`` each start's best loss (inf for a start that failed).
    starts : pandas.DataFrame
        A row per start: its best parameters, loss, and status (``ok`` or why it stopped).
    history : pandas.DataFrame
        A row per start and iteration (generation for ``method="de"``): loss and parameters.
    model : NeuronModel
        The model with the fitted parameters as defaults (``model.with_params(**best_params)``).
    settings : dict
        How the fit ran: method, loss, dt (s), window (s), input/voltage names, seed, time (s).
    samples : pandas.DataFrame or None
        ``method="sbi"``: posterior draws, SI, a column per parameter (saved as ``samples.csv``);
        ``best_params`` are then their marginal medians. None for the other methods.
    posterior : ConditionedPosterior or None
        ``method="sbi"``: the posterior given the fitted sweeps (:mod:`tidesim.fitting.sbi`: ``sample``,
        ``log_prob``, ``contains``); not saved (retrain, or keep the AmortizedPosterior).
    """

    def __init__(self, model, best_params: dict[str, float], start_losses: np.ndarray, starts: pd.DataFrame,
                 history: pd.DataFrame, settings: dict[str, Any], data: FitData | None = None,
                 samples: pd.DataFrame | None = None, posterior: Any = None):
        self.base_model = model
        self.best_params = dict(best_params)
        self.start_losses = np.asarray(start_losses, dtype=float)
        self.loss = float(np.min(self.start_losses))
        self.starts = starts
        self.history = history
        self.settings = dict(settings)
        self.data = data  # the training data (not saved: reload the recording for it)
        self.samples = samples
        self.posterior = posterior

    @property
    def warnings(self) -> list[str]:
        """What the fit flagged: parameters that ended on a bound, stages that explain the data poorly."""
        return list(self.settings.get("warnings", []))

    # ---------------------------------------------------------------- posterior (method="sbi")
    def credible_interval(self, level: float = 0.9) -> pd.DataFrame:
        """Central marginal credible intervals of the posterior samples: a row per parameter,
        columns ``low``, ``median``, ``high`` (SI; the (1-level)/2, 0.5, (1+level)/2 quantiles),
        ``mean``, ``std``."""
        if self.samples is None:
            raise ValueError("credible intervals need posterior samples: fit with method='sbi'")
        return credible_intervals(self.samples, level)

    def predictive_check(self, rec=None, n: int = 100, level: float = 0.9, seed: int | None = 0,
                         window: tuple[float, float] | None = None) -> pd.DataFrame:
        """Posterior predictive check against ``rec`` (default: the fitted sweeps): ``n`` posterior
        samples simulated on its sweeps, their summary statistics (spike count, rate, latency, ...)
        against the recording's (:func:`tidesim.fitting.sbi.predictive_check`)."""
        return predictive_check(self, rec, n=n, level=level, seed=seed, window=window)

    @property
    def model(self):
        """The fitted model: the base model with :attr:`best_params` applied."""
        return self.base_model.with_params(**self.best_params)

    # ---------------------------------------------------------------- using the fitted model
    def _data(self, rec, window) -> FitData:
        if rec is None:
            if self.data is None:
                raise ValueError("pass the recording to compare with (a loaded FitResult holds no data)")
            return self.data
        w = window if window is not None else self.settings.get("window")
        data = prepare(rec, dt=self.settings["dt"], window=tuple(w) if w is not None else None)
        # a staged fit puts each sweep at its recorded pre-stimulus rest (a bias current the file lacks)
        return data.with_bias(rest_bias(data, self.settings.get("rest")))

    def _simulate(self, data: FitData, runs: int = 1, seed: int | None = 0, record_all: bool = True):
        names = list(self.best_params)
        problem = Problem(self.base_model, data, names, input=self.settings["input"],
                          voltage=self.settings["voltage"])
        x = torch.tensor([[self.best_params[n] for n in names]], dtype=torch.float64).repeat(runs, 1)
        with torch.no_grad():
            return problem.simulate(x, record_all=record_all, seed=seed)

    def predict(self, rec=None, window: tuple[float, float] | None = None):
        """``SimulationResult`` of the fitted model, one neuron per sweep of ``rec`` (default: the
        training sweeps), driven by the recorded current at the fit's step ``dt``."""
        return self._simulate(self._data(rec, window)).result

    def score(self, rec=None, window: tuple[float, float] | None = None, delta: float = 4e-3,
              baseline: bool = True) -> pd.DataFrame:
        """A row per sweep: ``step_pA`` (the first step's amplitude: the current at the first sample that
        departs from the sweep's first one, the sweep's label in step protocols),
        ``spikes_data``, ``spikes_model``, ``gamma`` (coincidence factor within ``delta`` s),
        ``rmse`` (V, windows around spikes left out), ``van_rossum`` (tau 10 ms) and, with
        ``baseline``, ``gamma_poisson``/``gamma_poisson_p95``: what rate-matched Poisson trains
        score (:func:`~tidesim.fitting.poisson_baseline`). Where sweeps repeat a stimulus, also its
        ``stimulus`` and that stimulus's ``reliability_2ms``, ``gamma_normalized_2ms``, ``md_star`` and
        ``psth_ev`` (:meth:`score_trials`)."""
        data = self._data(rec, window)
        out = self._simulate(data)
        res = out.result
        mask = data.spike_mask(2e-3, 5e-3, extra=out.spikes)[:, 0, :]
        err2 = ((out.voltage[:, 0, :] - data.voltage) ** 2 * mask).sum(0) / mask.sum(0).clamp_min(1)
        rows = []
        for s in range(data.n_sweeps):
            d_times = np.nonzero(data.spikes[:, s].numpy())[0] * data.dt
            m_times = np.asarray(res.spike_trains[s])
            gamma = gamma_factor([d_times], [m_times], delta=delta, duration=data.duration)[0]
            vr = van_rossum_distance([d_times, m_times], tau=10e-3)[0, 1] if len(d_times) + len(m_times) \
                else 0.0
            step = _first_step(data.recorded_current[:, s])
            rows.append({"sweep": data.names[s], "step_pA": round(step * 1e12, 6),
                         "spikes_data": len(d_times), "spikes_model": len(m_times), "gamma": gamma,
                         "rmse": float(err2[s].sqrt()), "van_rossum": float(vr)})
        table = pd.DataFrame(rows)
        if baseline:
            base = poisson_baseline(data, delta=delta, n_draws=100)
            table["gamma_poisson"] = base["gamma_poisson"].to_numpy()
            table["gamma_poisson_p95"] = base["gamma_poisson_p95"].to_numpy()
        if any(len(v) > 1 for v in data.trials().values()):  # repeated trials: the field's measures too
            table["stimulus"] = data.stimuli
            trials = self.score_trials(rec, window)[["stimulus", "reliability_2ms", "gamma_normalized_2ms",
                                                     "md_star", "psth_ev"]]
            table = table.merge(trials, on="stimulus", how="left")
        return table

    def score_trials(self, rec=None, window: tuple[float, float] | None = None, runs: int = 20,
                     seed: int | None = 0, bin_size: float = 10e-3) -> pd.DataFrame:
        """The measures of repeated trials (frozen noise), a row per stimulus of ``rec`` that was
        recorded at least twice (``rec.stimuli``): ``repeats``, mean ``spikes_data``/``spikes_model``,
        the cell's ``reliability`` and the model's ``gamma``/``gamma_normalized`` at 2 and 4 ms
        (:func:`tidesim.analysis.normalized_gamma`; NaN where the rate leaves Gamma undefined),
        ``md_star`` (4 ms) and ``psth_ev`` (``bin_size`` s). A stochastic model runs ``runs`` times per
        stimulus (spread over its repeats' currents), a deterministic one once per repeat."""
        data = self._data(rec, window)
        trials = {k: v for k, v in data.trials().items() if len(v) > 1}
        if not trials:
            raise ValueError("score_trials needs repeats of a stimulus: label them (Recording.with_stimuli or "
                             "group_repeats) or load a frozen-noise recording")
        per_sweep = max(1, -(-runs // min(len(v) for v in trials.values()))) if self.model.stochastic else 1
        out = self._simulate(data, runs=per_sweep, seed=seed, record_all=False)
        rows = []
        for label, sweeps in trials.items():
            d = [np.asarray(data.spike_times[s], dtype=float) for s in sweeps]
            m = [np.nonzero(out.spikes[:, b, s].numpy() > 0.5)[0] * data.dt
                 for s in sweeps for b in range(per_sweep)]
            row = {"stimulus": label, "repeats": len(sweeps), "spikes_data": float(np.mean([len(t) for t in d])),
                   "spikes_model": float(np.mean([len(t) for t in m]))}
            for delta in (2e-3, 4e-3):
                g = normalized_gamma(d, m, data.duration, delta)
                tag = f"{delta * 1e3:g}ms"
                row.update({f"reliability_{tag}": g["reliability"], f"gamma_{tag}": g["gamma"],
                            f"gamma_normalized_{tag}": g["normalized"]})
            row["md_star"] = md_star(d, m, data.duration, 4e-3)
            row["psth_ev"] = psth_explained_variance(d, m, data.duration, bin_size)
            rows.append(row)
        return pd.DataFrame(rows)

    def crossvalidate(self, rec=None, window: tuple[float, float] | None = None, **kw):
        """Run the fitted model in Brian2 on the sweeps of ``rec`` (default: the training sweeps)
        and compare with the torch run (:class:`~tidesim.CrossValidationReport`)."""
        data = self._data(rec, window)
        v = self.settings["voltage"]
        return crossvalidate(self.model, duration=data.n_steps * data.dt, dt=data.dt, n=data.n_sweeps,
                                inputs={self.settings["input"]: data.current}, initial={v: data.voltage[0]},
                                record=[v], **kw)

    # ---------------------------------------------------------------- figures
    def plot(self, rec=None, sweeps: Sequence[int] | None = None, window: tuple[float, float] | None = None):
        """Data vs model voltage (mV) for some sweeps, and the loss curve of every start."""
        # matplotlib loads only when a figure is drawn
        import matplotlib.pyplot as plt

        data = self._data(rec, window)
        out = self._simulate(data)
        sweeps = list(sweeps if sweeps is not None else range(min(data.n_sweeps, 4)))
        fig, axes = plt.subplots(len(sweeps) + 1, 1, figsize=(9, 2.2 * (len(sweeps) + 1)), squeeze=False)
        axes = axes[:, 0]
        t = np.arange(data.n_steps) * data.dt
        for ax, s in zip(axes, sweeps):
            ax.plot(t, data.voltage[:, s].numpy() * 1e3, color="0.3", lw=0.7, label="recording")
            ax.plot(t, out.voltage[:, 0, s].numpy() * 1e3, color="C3", lw=0.7, label="fitted model")
            ax.set_ylabel("V (mV)")
            ax.set_title(data.names[s], fontsize=9)
            ax.set_xlabel("time (s)")
        axes[0].legend(frameon=False, fontsize=8)
        ax = axes[-1]
        if len(self.history):
            for _, h in self.history.groupby("start"):
                ax.plot(h["iteration"], np.minimum.accumulate(h["loss"].to_numpy()), lw=0.8, alpha=0.7)
            ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("best loss per start")
        fig.tight_layout()
        return fig

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write ``path/fit.json`` (parameters, losses, settings, history, the model as JSON) and, for
        ``method="sbi"``, ``path/samples.csv`` (posterior samples; the posterior itself is not saved).

        Plain text only, nothing pickled, each file written atomically. A folder that already holds a
        saved fit is replaced only with ``overwrite=True``.
        """
        path = check_writable_dir(path, "the fit's folder")
        check_new([path / "fit.json"], overwrite, "saving the fit")
        doc = {"format": _FORMAT, "model": spec_to_json(self.base_model.spec), "best_params": self.best_params,
               "start_losses": [float(x) for x in self.start_losses], "settings": _jsonable(self.settings),
               "starts": _jsonable(self.starts.to_dict(orient="list")),
               "history": _jsonable(self.history.to_dict(orient="list"))}
        text = json.dumps(doc, indent=1, allow_nan=True)
        if self.samples is not None:
            atomic_write(path / "samples.csv",
                         lambda tmp: self.samples.to_csv(tmp, index=False, float_format="%.17g"))
        elif (path / "samples.csv").exists():  # an earlier sbi fit's samples are not this fit's
            (path / "samples.csv").unlink()
        if (path / "model.pt").exists():  # an older tidesim's pickled model would contradict fit.json
            (path / "model.pt").unlink()
        atomic_write_text(path / "fit.json", text)  # last: its presence marks a complete save
        return path

    def export_brian2(self, path: str | Path | None = None, **kw) -> str:
        """The fitted model as a standalone Brian2 script (:func:`tidesim.export_brian2`: ``n``,
        ``duration``, ``dt``, ``params`` such as the injected current, ``record``, ``overwrite``)."""
        return export_brian2(self.model, path=path, **kw)

    def export_neuroml(self, path: str | Path | None = None, **kw) -> str:
        """The fitted model as a NeuroML 2 cell, validated against the schema (zoo ``lif`` and ``adex``
        only: :func:`tidesim.export_neuroml`)."""
        return export_neuroml(self.model, path=path, **kw)

    def export_nest(self) -> dict[str, Any]:
        """The fitted model as NEST's model name and parameter dictionary (zoo ``lif``, ``adex`` and
        ``gif`` only: :func:`tidesim.export_nest`)."""
        return export_nest(self.model)

    @classmethod
    def load(cls, path: str | Path, allow_pickle: bool = False) -> "FitResult":
        """Read a FitResult written by :meth:`save`. Loading never runs code from the files.

        Fits saved by tidesim 0.x before the JSON format keep their model in a pickled ``model.pt``;
        unpickling can run any code the file carries, so it is refused unless ``allow_pickle=True``
        (only for files you made yourself).
        """
        path = Path(path)
        if not (path / "fit.json").is_file():
            raise FitError(f"no saved fit in {path} (fit.json is missing)")
        try:
            doc = json.loads((path / "fit.json").read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise FitError(f"{path / 'fit.json'} is not a readable saved fit: {exc}") from None
        if not isinstance(doc, dict):
            raise FitError(f"{path / 'fit.json'} is not a saved fit")
        try:
            spec = spec_from_json(doc["model"]) if "model" in doc else _pickled_spec(path, allow_pickle)
            model = NeuronModel(**spec)
            best = {str(k): float(v) for k, v in doc["best_params"].items()}
            losses = np.asarray(doc["start_losses"], dtype=float)
            starts, history = pd.DataFrame(doc["starts"]), pd.DataFrame(doc["history"])
            settings = dict(doc["settings"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FitError(f"{path / 'fit.json'} is not a complete saved fit "
                           f"({type(exc).__name__}: {exc})") from None
        samples = pd.read_csv(path / "samples.csv") if (path / "samples.csv").exists() else None
        return cls(model, best, losses, starts, history, settings, samples=samples)

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={fmt(v, self.base_model.dims[k])}" for k, v in self.best_params.items())
        return f"FitResult({self.base_model.name}: {ps}; loss={self.loss:.4g})"


_FORMAT = "tidesim-fit/2"


def _first_step(current: torch.Tensor) -> float:
    """The current (A) of a sweep's first step: the first sample differing from the first one (0 for a
    sweep without a step); a later hyperpolarising pulse does not relabel the sweep."""
    c = current.detach().cpu().numpy()
    moved = np.nonzero(np.abs(c - c[0]) > 1e-15)[0]
    if not moved.size:
        return float(c[0])
    # one sample past the edge: on a coarser grid the edge sample averages the step with the baseline
    k = moved[0] + 1 if moved[0] + 1 < len(c) and abs(c[moved[0] + 1] - c[0]) > 1e-15 else moved[0]
    return float(c[k])


def _pickled_spec(path: Path, allow_pickle: bool) -> dict:
    """The model of a fit saved by an older tidesim (pickled), only when the user vouches for the file."""
    pt = path / "model.pt"
    if not pt.is_file():
        raise FitError(f"{path / 'fit.json'} holds no model, and there is no model.pt beside it")
    if not allow_pickle:
        raise FitError(f"{pt} is a pickled model from an older tidesim; unpickling a file can run any code "
                       "it carries, so tidesim refuses it. If you saved this fit yourself, load it once with "
                       "FitResult.load(path, allow_pickle=True) and save it again (JSON, safe to share).")
    return torch.load(pt, weights_only=False)["model_spec"]


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return repr(x)
