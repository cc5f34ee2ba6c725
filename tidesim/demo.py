"""``tidesim demo``: the main job on a shipped real recording.

Loads a real current-clamp recording through neo (the shipped ``regular_spiking`` cell), drives
an AdEx model with the recorded stimulus in torch and in Brian2, checks that the two simulators
agree (the cross-validation report), computes the gradient of the model's spike counts with
respect to its parameters through the differentiable simulator, and compares the model's firing
with the cell's, sweep by sweep. Fitting the parameters (``ts.fit``) comes with the fitting issue;
until then the demo stops before the optimiser, at the gradients it would use.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

__all__ = ["run_demo", "DEMO_PARAMETERS"]

#: AdEx parameters of a small cortical cell (Naud et al. 2008 'adapting' class, scaled to a
#: 150 pF membrane), a starting point the fit will move from.
DEMO_PARAMETERS = {"C": 150e-12, "gL": 6e-9, "EL": -62e-3, "VT": -45e-3, "DeltaT": 2e-3, "a": 2e-9,
                   "tau_w": 120e-3, "b": 40e-12, "V_reset": -58e-3}


def run_demo(out: str | Path = "tidesim-demo", sweeps=(4, 8, 12, 16), target: str = "auto") -> int:
    """Run the demo; writes ``sweeps.csv``, ``crossvalidation.csv`` and two figures to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import tidesim as ts

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rec = ts.datasets.load_bundled("regular_spiking").select(list(sweeps))
    print(f"loaded {rec.name}: {len(rec)} sweeps of {rec.duration:g} s at {rec.sampling_rate / 1e3:g} kHz "
          f"({rec.annotations['current_source']})")
    model = ts.models.get("adex", **DEMO_PARAMETERS)
    current = rec.current.T.contiguous()  # [T, sweeps]: one model neuron per sweep
    report = ts.crossvalidate(model, duration=rec.duration, dt=rec.dt, inputs={"I": current}, target=target)
    print(report)
    report.to_dataframe().to_csv(out / "crossvalidation.csv")

    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in DEMO_PARAMETERS.items()
              if k in ("gL", "VT", "a", "b")}
    res = ts.simulate(model, duration=rec.duration, dt=rec.dt, inputs={"I": current}, params=params,
                      surrogate=ts.surrogate.fast_sigmoid(slope=200))
    counts = res.spike_counts
    grads = torch.autograd.grad(counts.sum(), list(params.values()))
    table = pd.DataFrame({
        "sweep": list(sweeps),
        "step_pA": [round(float(rec.current[k].max()) * 1e12, 3) for k in range(len(rec))],
        "spikes_data": rec.spike_counts,
        "spikes_model": counts.detach().numpy().astype(int),
    })
    table.to_csv(out / "sweeps.csv", index=False)
    print("\nfiring per sweep (model: AdEx at the demo's starting parameters)")
    print(table.to_string(index=False))
    print("\nd(total model spikes)/d(parameter), through the differentiable simulator:")
    units = {"gL": ("nS", 1e-9), "VT": ("mV", 1e-3), "a": ("nS", 1e-9), "b": ("pA", 1e-12)}
    for (name, value), g in zip(params.items(), grads):
        unit, scale = units[name]
        print(f"  {name:>3} = {value.item() / scale:7.2f} {unit}: {g.item() * scale:+9.3f} spikes per {unit}")

    fig, axes = plt.subplots(len(rec), 1, figsize=(10, 2.2 * len(rec)), sharex=True, squeeze=False)
    t = rec.t.numpy()
    for k, ax in enumerate(axes[:, 0]):
        ax.plot(t, rec.voltage[k].numpy() * 1e3, lw=0.6, color="k", label="recording")
        ax.plot(t, res["v"][:, k].detach().numpy() * 1e3, lw=0.6, color="tab:red", alpha=0.8, label="AdEx (torch)")
        ax.set_ylabel("V (mV)")
        ax.set_title(f"sweep {sweeps[k]}: step {table.step_pA[k]:.0f} pA; spikes data {table.spikes_data[k]}, "
                     f"model {table.spikes_model[k]}", fontsize=9)
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("time in sweep (s)")
    fig.tight_layout()
    fig.savefig(out / "recording_vs_model.png", dpi=110)
    report.plot(neurons=[len(rec) - 1]).savefig(out / "crossvalidation.png", dpi=110)
    plt.close("all")
    print(f"\nwritten to {out}/: sweeps.csv, crossvalidation.csv, recording_vs_model.png, crossvalidation.png")
    return 0 if report.passed else 1
