"""A fit's outputs on disk: parameter table (CSV), scores, figures (PNG) and a short report.

Shared by ``tidesim fit`` and ``tidesim demo``, and usable from Python::

    fit = ts.fit(model, rec.select(train), params=...)
    paths = write_report(fit, "out/", test=rec.select(test))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tidesim.core.files import atomic_write, atomic_write_text, check_new, check_writable_dir
from tidesim.core.units import fmt, unit_name

__all__ = ["parameter_table", "write_report", "timing_summary", "check_report_folder"]


def check_report_folder(out: str | Path, overwrite: bool = False) -> Path:
    """Refuse, before any work, a report folder that cannot be written or already holds a report."""
    out = check_writable_dir(out, "the report folder")
    check_new([out / "report.md", out / "parameters.csv", out / "fit" / "fit.json"], overwrite,
              f"writing the report to {out}/", "pass overwrite=True (tidesim: --force) to replace it, or "
              "choose another folder")
    return out


def _csv(table: pd.DataFrame, path: Path, index: bool = False) -> None:
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=index))


def _png(fig, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def parameter_table(fit) -> pd.DataFrame:
    """A row per fitted parameter: SI value and unit, a readable value, bounds and scale."""
    bounds = {b["name"]: b for b in fit.settings.get("bounds", [])}
    rows = []
    for name, value in fit.best_params.items():
        dim = fit.base_model.dims[name]
        b = bounds.get(name, {})
        rows.append({"parameter": name, "value": value, "unit": unit_name(dim), "readable": fmt(value, dim),
                     "low": b.get("low", ""), "high": b.get("high", ""), "scale": b.get("scale", "")})
    return pd.DataFrame(rows)


def write_report(fit, out: str | Path, test=None, window: tuple[float, float] | None = None,
                 crossvalidate: bool = True, target: str = "auto", quiet: bool = False,
                 overwrite: bool = False) -> dict[str, Any]:
    """Write what a lab keeps of a fit to the folder ``out``.

    Files: ``parameters.csv``, ``starts.csv``, ``history.csv``, ``score_train.csv`` (and
    ``score_test.csv`` for held-out sweeps ``test``, a Recording), ``fit_train.png``
    (``fit_test.png``), ``crossvalidation.csv``/``.png`` (the fitted model run in Brian2 on the
    training sweeps, ``target`` its code target), ``report.md`` and ``fit/`` (:meth:`FitResult.save`).

    Each file is written atomically; a folder that already holds a report is refused unless
    ``overwrite=True`` (check it before a long fit with :func:`check_report_folder`).

    Returns ``{"paths": {...}, "parameters": DataFrame, "train": DataFrame, "test": DataFrame | None,
    "crossvalidation": CrossValidationReport | None}``.
    """
    # matplotlib loads only when a figure is drawn
    import matplotlib

    matplotlib.use("Agg")
    # matplotlib loads only when a figure is drawn
    import matplotlib.pyplot as plt

    out = check_report_folder(out, overwrite)
    paths: dict[str, Path] = {}

    def say(msg: str) -> None:
        if not quiet:
            print(msg)

    params = parameter_table(fit)
    paths["parameters"] = out / "parameters.csv"
    _csv(params, paths["parameters"])
    paths["starts"] = out / "starts.csv"
    _csv(fit.starts, paths["starts"])
    paths["history"] = out / "history.csv"
    _csv(fit.history, paths["history"])

    train = fit.score()
    paths["score_train"] = out / "score_train.csv"
    _csv(train, paths["score_train"])
    fig = fit.plot(sweeps=range(min(4, fit.data.n_sweeps)) if fit.data is not None else None)
    paths["fit_train"] = out / "fit_train.png"
    _png(fig, paths["fit_train"])
    plt.close(fig)

    test_table = None
    if test is not None:
        test_table = fit.score(test, window=window)
        paths["score_test"] = out / "score_test.csv"
        _csv(test_table, paths["score_test"])
        fig = fit.plot(test, window=window, sweeps=range(min(4, len(test))))
        paths["fit_test"] = out / "fit_test.png"
        _png(fig, paths["fit_test"])
        plt.close(fig)

    report = None
    if crossvalidate:
        report = fit.crossvalidate(target=target)
        paths["crossvalidation"] = out / "crossvalidation.csv"
        _csv(report.to_dataframe(), paths["crossvalidation"], index=True)
        fig = report.plot(neurons=[int(np.argmax(train["spikes_data"].to_numpy()))])
        paths["crossvalidation_png"] = out / "crossvalidation.png"
        _png(fig, paths["crossvalidation_png"])
        plt.close(fig)

    paths["fit"] = fit.save(out / "fit", overwrite=overwrite)
    paths["report"] = atomic_write_text(out / "report.md", _markdown(fit, params, train, test_table, report))
    say(f"\nfitted {fit.base_model.name} ({_how(fit.settings)}), loss {fit.loss:.4g}:")
    say(params[["parameter", "readable", "low", "high"]].to_string(index=False))
    for message in fit.warnings:
        say(f"WARNING: {message}")
    say("\ntraining sweeps:\n" + _brief(train))
    if test_table is not None:
        say("\nheld-out sweeps:\n" + _brief(test_table))
    if report is not None:
        say(f"\nBrian2 cross-validation of the fitted model: {'PASSED' if report.passed else 'FAILED'}")
    say(f"\nwritten to {out}/: " + ", ".join(sorted(p.name for p in paths.values())))
    return {"paths": paths, "parameters": params, "train": train, "test": test_table, "crossvalidation": report}


def _how(settings: dict) -> str:
    if "evaluations" in settings:
        return f"{settings['method']}, {settings['evaluations']} simulations in {settings['seconds']:.1f} s"
    return f"{settings['method']} in {settings['seconds']:.1f} s"


def _stage_line(stage: dict) -> str:
    """One staged-fit stage in words: what it estimated, how, and how well."""
    est = ", ".join(k for k in stage.get("estimated", {}) if not k.startswith(("sweep_", "electrode", "current_")))
    quality = ", ".join(f"{k.replace('_', ' ')} {v:.3g}" if isinstance(v, float) else f"{k.replace('_', ' ')} {v}"
                        for k, v in stage.get("quality", {}).items())
    return (f"- **{stage['stage']}** ({stage.get('seconds', float('nan')):.1f} s): {est or 'nothing kept'}, by "
            f"{stage['how']}; {quality}")


_COLUMNS = ["sweep", "step_pA", "spikes_data", "spikes_model", "gamma", "gamma_poisson", "gamma_poisson_p95",
            "rmse"]


def _brief(table: pd.DataFrame) -> str:
    t = table[[c for c in _COLUMNS if c in table]].copy()
    if "rmse" in t:
        t["rmse"] = t["rmse"] * 1e3
        t = t.rename(columns={"rmse": "rmse_mV"})
    return t.to_string(index=False, float_format=lambda x: f"{x:.3g}")


def summary(table: pd.DataFrame) -> dict[str, float]:
    """Totals of a score table: spike counts, their relative error, mean gamma vs the baseline."""
    spiking = table[table["spikes_data"] > 0]
    nd, nm = int(table["spikes_data"].sum()), int(table["spikes_model"].sum())
    return {"spikes_data": nd, "spikes_model": nm, "count_error": (nm - nd) / nd if nd else float("nan"),
            "gamma": float(spiking["gamma"].mean()) if len(spiking) else float("nan"),
            "gamma_poisson": float(spiking["gamma_poisson"].mean())
            if "gamma_poisson" in spiking and len(spiking) else float("nan")}


def _markdown(fit, params, train, test, report) -> str:
    s = fit.settings
    lines = [f"# Fit of {fit.base_model.name}", "",
             f"- sweeps fitted: {', '.join(s['sweeps'])}",
             f"- method {s['method']}, loss `{s['loss']}`, dt {s['dt'] * 1e3:g} ms, window {s.get('window')} s, "
             f"seed {s.get('seed')}",
             f"- {_how(s)}; best loss {fit.loss:.4g}", "",
             "## Parameters", "", "```", params.to_string(index=False), "```", ""]
    if fit.warnings:
        lines += ["## Warnings", ""] + [f"- {m}" for m in fit.warnings] + [""]
    if s.get("stages"):
        lines += ["## How each parameter was estimated", ""] + [_stage_line(st) for st in s["stages"]] + [""]
    for title, table in (("Training sweeps", train), ("Held-out sweeps", test)):
        if table is None:
            continue
        tot = summary(table)
        lines += [f"## {title}", "", "```", _brief(table), "```", "",
                  f"Total spikes: recording {tot['spikes_data']}, model {tot['spikes_model']} "
                  f"({100 * tot['count_error']:+.1f}%); mean gamma {tot['gamma']:.3f} "
                  f"(rate-matched Poisson: {tot['gamma_poisson']:.3f}).", ""]
    if report is not None:
        lines += ["## Brian2 cross-validation", "", "```", str(report), "```", ""]
    return "\n".join(lines)


def timing_summary(table: pd.DataFrame) -> str:
    """Held-out spike timing in words: per spiking sweep of a :meth:`FitResult.score` table (with its
    Poisson baseline), the coincidence factor beside the 95th percentile of rate-matched Poisson trains,
    and what that shows."""
    spiking = table[table.spikes_data > 0]
    if not len(spiking):
        return "No held-out sweep has spikes: spike timing cannot be judged."
    lines = ["held-out spike timing (coincidence factor, 4 ms, vs rate-matched Poisson trains):"]
    above = spiking.gamma > spiking.gamma_poisson_p95
    for row, ok in zip(spiking.itertuples(), above):
        lines.append(f"  {row.sweep}: {row.spikes_data} spike{'s' if row.spikes_data != 1 else ''} recorded, "
                     f"{row.spikes_model} predicted; "
                     f"gamma {row.gamma:.2f} vs Poisson 95th percentile {row.gamma_poisson_p95:.2f} -> "
                     f"{'better than chance' if ok else 'not distinguishable from chance'}")
    n, k = len(spiking), int(above.sum())
    count = float(np.mean(np.abs(table.spikes_model - table.spikes_data)))
    lines.append(f"The model predicts the spike times of {k} of {n} held-out sweeps better than rate-matched "
                 f"Poisson trains would by chance (95th percentile); its spike counts are off by {count:.1f} "
                 "spikes per sweep on average."
                 + ("" if k == n else " On the others its spike times are no better than chance."))
    return "\n".join(lines)
