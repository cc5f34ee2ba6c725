"""``tidesim fit FILE --model adex --params a,b,tau_w ...``: fit a zoo model to a recording from the shell.

Writes the parameter table (CSV), scores of the fitted and held-out sweeps, figures (PNG), the
Brian2 cross-validation of the fitted model and a short report (``report.md``) to ``--out``.
Values on the command line take units: ``100pA``, ``-70mV``, ``0.02/ms``, or plain SI numbers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from brian2 import amp, second, volt

import tidesim as ts
from tidesim import models
from tidesim.core import units
from tidesim.fitting import check_report_folder, family_of, write_report

__all__ = ["add_parser", "run", "parse_quantity", "parse_params", "parse_protocol", "free_folder"]

def parse_quantity(text: str, what: str, dim: Any = None) -> Any:
    """``"100pA"`` → a Brian2 quantity, ``"1e-10"`` → a float (SI); ``dim``: the dimension it must have
    (see :func:`tidesim.core.units.parse_quantity`)."""
    return units.parse_quantity(text, what, dim)


def parse_params(text: str | None, model_name: str) -> dict[str, tuple]:
    """``"a,b=0pA:200pA,tau_w"`` → bounds; a name alone takes the zoo's ``FIT_BOUNDS``."""
    defaults = getattr(models.module(model_name), "FIT_BOUNDS", {})
    dims = ts.models.get(model_name).dims
    if not text:
        if not defaults:
            raise ValueError(f"{model_name} has no default fit bounds: name the parameters with --params")
        return dict(defaults)
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, rng = item.partition("=")
        name = name.strip()
        if rng:
            parts = rng.split(":")
            if len(parts) not in (2, 3):
                raise ValueError(f"--params {name}: give a range as low:high (e.g. {name}=0nS:10nS), got {rng!r}")
            low, high = (parse_quantity(p, f"--params {name}", dims.get(name)) for p in parts[:2])
            out[name] = (low, high, parts[2]) if len(parts) == 3 else (low, high)
        elif name in defaults:
            out[name] = defaults[name]
        else:
            known = ", ".join(defaults) or "none"
            raise ValueError(f"--params {name}: give its range ({name}=low:high); {model_name} has default "
                             f"ranges for {known}")
    return out


def parse_protocol(text: str, n_sweeps: int) -> list[list[tuple[float, float, float]]]:
    """``"0.1:0.6:-100pA:25pA"`` (start s, stop s, amplitude, optional change per sweep, as
    Clampex's epoch table; several epochs separated by ``;``) → a list of (start, stop, amplitude
    A) steps per sweep."""
    epochs = []
    for epoch in filter(None, (e.strip() for e in text.split(";"))):
        parts = epoch.split(":")
        if len(parts) not in (3, 4):
            raise ValueError(f"--protocol: an epoch is START:STOP:AMPLITUDE[:CHANGE_PER_SWEEP], got {epoch!r}")
        start, stop = (float(parse_quantity(p, "--protocol time", second.dim)) for p in parts[:2])
        a0 = float(parse_quantity(parts[2], "--protocol amplitude", amp.dim))
        da = float(parse_quantity(parts[3], "--protocol change per sweep", amp.dim)) if len(parts) == 4 else 0.0
        epochs.append((start, stop, a0, da))
    if not epochs:
        raise ValueError("--protocol: no epochs given")
    return [[(s, e, a0 + k * da) for s, e, a0, da in epochs] for k in range(n_sweeps)]


def _sweeps(text: str | None, n: int, what: str) -> list[int] | None:
    if text is None:
        return None
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("-")
        idx = range(int(lo), int(hi) + 1) if hi else [int(lo)]
        for i in idx:
            if not 0 <= i < n:
                raise ValueError(f"{what}: sweep {i} does not exist (the recording has sweeps 0-{n - 1})")
            out.append(i)
    return out


def _window(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    parts = text.split(":")
    if len(parts) != 2:
        raise ValueError(f"--window: give START:STOP in seconds (e.g. 0.1:2.2), got {text!r}")
    return tuple(float(parse_quantity(p, "--window", second.dim)) for p in parts)  # type: ignore[return-value]


def load_recording(source: str, protocol: str | None = None, channel: str | None = None,
                   spike_threshold: float = 0.0):
    """A file path, or the name of a shipped recording (``tidesim.datasets.bundled()``)."""
    kw: dict[str, Any] = {"channel": channel, "spike_threshold": spike_threshold}
    path = Path(source)
    loader = (lambda **k: ts.datasets.load(path, **k)) if path.exists() else \
        (lambda **k: ts.datasets.load_bundled(source, **k)) if source in ts.datasets.bundled() else None
    if loader is None:
        raise ValueError(f"{source!r} is neither a file nor a shipped recording "
                         f"({', '.join(ts.datasets.bundled())})")
    rec = loader(**kw)
    if protocol and protocol != "file":
        rec = loader(protocol=parse_protocol(protocol, len(rec)), **kw)
    return rec


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("fit", help="fit a zoo model to a current-clamp recording (tidesim/cli/fit.py)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="a recording neo reads (.abf, .nix, ...), an NWB 2 file (.nwb), or a shipped "
                   "one's name (tidesim.datasets.bundled())")
    p.add_argument("--model", default="gif_hazard",
                   help="zoo model or variant (gif_hazard, gif_threshold, glif5, adex, ...; `tidesim models`)")
    p.add_argument("--params", default=None,
                   help="parameters to fit: a,b,tau_w (the zoo's ranges) or a=0nS:10nS,... (default: a staged "
                        "fit where the model has one, else all the zoo's FIT_BOUNDS)")
    p.add_argument("--fixed", default=None, help="parameters held at a value: EL=-65mV,DeltaT=2mV")
    p.add_argument("--protocol", default="file",
                   help="'file' (the stimulus stored in the file) or START:STOP:AMP[:CHANGE_PER_SWEEP] epochs "
                        "separated by ';', e.g. 0.1:0.6:-100pA:25pA")
    p.add_argument("--channel", default=None, help="membrane-potential channel (name or index)")
    p.add_argument("--spike-threshold", default="0mV", help="spike detection threshold (default 0mV)")
    p.add_argument("--sweeps", default=None, help="sweeps to fit, e.g. 2,6,8-10 (default: all)")
    p.add_argument("--test", default=None, help="held-out sweeps to score, e.g. 7,9")
    p.add_argument("--window", default=None, help="part of each sweep to fit, START:STOP in s")
    p.add_argument("--dt", default=None, help="integration step (default: the sampling interval), e.g. 0.2ms")
    p.add_argument("--loss", default="default", help="default, trace, spikes, gamma, latency, count")
    p.add_argument("--method", default="auto", choices=["auto", "staged", "de", "adam", "lbfgs"],
                   help="auto: staged for the families that have it (gif, mat, glif1-5, adex) when --params is "
                        "left out, else differential evolution then gradient polishing")
    p.add_argument("--n-starts", type=int, default=64, help="starts (population size for de/auto)")
    p.add_argument("--max-iter", type=int, default=60, help="iterations (generations for de/auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of the starting points and the search (default 0)")
    p.add_argument("--no-crossvalidate", action="store_true", help="skip the Brian2 run of the fitted model")
    p.add_argument("--target", default="auto", choices=["auto", "cython", "numpy"], help="Brian2 target")
    p.add_argument("--out", default=None,
                   help="folder for tables, figures and the report (default: tidesim-fit, or tidesim-fit-2, ... "
                        "if that holds an earlier report)")
    p.add_argument("--force", action="store_true", help="replace the report already in --out")
    p.add_argument("--checkpoint", default=None,
                   help="file the search state is saved to as it goes (methods auto, de, adam, lbfgs)")
    p.add_argument("--resume", action="store_true", help="go on from --checkpoint (same arguments otherwise)")
    return p


def free_folder(base: str) -> Path:
    """``base``, or ``base-2``, ``base-3``, ... : the first that holds no report (default output folders)."""
    k, folder = 1, Path(base)
    while (folder / "report.md").exists() or (folder / "fit" / "fit.json").exists():
        k += 1
        folder = Path(f"{base}-{k}")
    return folder


def _fixed(text: str | None, dims: dict) -> dict[str, Any]:
    fixed = {}
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        name, _, value = item.partition("=")
        if not value:
            raise ValueError(f"--fixed: give name=value, got {item!r}")
        fixed[name.strip()] = parse_quantity(value, f"--fixed {name.strip()}", dims.get(name.strip()))
    return fixed


def run(args) -> int:
    # every argument and the output folder are checked before the (long) fit starts
    if args.resume and not args.checkpoint:
        raise ValueError("--resume goes on from --checkpoint FILE: give the checkpoint file")
    out = check_report_folder(args.out or free_folder("tidesim-fit"), overwrite=args.force)
    spike_threshold = float(parse_quantity(args.spike_threshold, "--spike-threshold", volt.dim))
    window = _window(args.window)
    dt = float(parse_quantity(args.dt, "--dt", second.dim)) if args.dt else None
    model = ts.models.get(args.model, **_fixed(args.fixed, ts.models.get(args.model).dims))
    staged = args.method == "staged" or (args.method == "auto" and args.params is None
                                         and family_of(model) is not None)
    params = None if staged else parse_params(args.params, args.model)
    rec = load_recording(args.file, args.protocol, channel=args.channel, spike_threshold=spike_threshold)
    train = _sweeps(args.sweeps, len(rec), "--sweeps")
    test = _sweeps(args.test, len(rec), "--test")
    where = (f", window {window[0]:g}-{window[1]:g} s" if window else "") + (f", dt {dt * 1e3:g} ms" if dt else "")
    what = "staged: every parameter from the data" if params is None else ", ".join(params)
    print(f"fitting {model.name} ({what}) to {rec.name}: sweeps "
          f"{train if train is not None else 'all'} of {len(rec)}{where}; report to {out}/")
    fit = ts.fit(model, rec, params=params, sweeps=train, window=window, dt=dt, loss=args.loss, method=args.method,
                 n_starts=args.n_starts, max_iter=args.max_iter, seed=args.seed, progress=True,
                 checkpoint=args.checkpoint, resume=args.checkpoint if args.resume else None)
    write_report(fit, out, test=rec.select(test) if test else None, window=window,
                 crossvalidate=not args.no_crossvalidate, target=args.target, overwrite=args.force)
    return 0
