"""Train a spiking network on scikit-learn's handwritten digits (8x8 images, 10 classes), with
surrogate gradients, on the CPU.

The images are rate-coded (``ts.encode.rate``: each pixel's intensity is its spike probability
per step) over ``T`` steps and fed to a 64-H-10 network of snnTorch-style LIF layers
(``ts.nn.LIF``); the class is the output neuron with the most spikes (``ts.loss.ce_count``).

    python tutorials/digits_snn.py            # full run: prints test accuracy (>= 95%)
    python tutorials/digits_snn.py --fast     # a short run (the test suite's version)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import tidesim as ts


def load(seed: int = 0):
    """Digits as intensities in [0, 1] and labels; a stratified 75/25 train/test split."""
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=0.25, random_state=seed, stratify=y)
    return x[idx_train], y[idx_train], x[idx_test], y[idx_test]


def build(hidden: int = 256, beta: float = 0.9) -> ts.nn.Sequential:
    return ts.nn.Sequential(torch.nn.Linear(64, hidden), ts.nn.LIF(beta=beta),
                            torch.nn.Linear(hidden, 10), ts.nn.LIF(beta=beta))


def evaluate(net, x, y, steps: int, seed: int) -> float:
    with torch.no_grad():
        spikes, _ = net(ts.encode.rate(x, steps, seed=seed))
    return ts.loss.accuracy_count(spikes, y)


def train(epochs: int = 30, steps: int = 25, hidden: int = 256, batch: int = 64, lr: float = 2e-3,
          seed: int = 0, progress: bool = True) -> dict:
    """Train and return {"test_accuracy", "train_accuracy", "seconds", "epochs", ...}."""
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    x_train, y_train, x_test, y_test = load(seed)
    net = build(hidden)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _epoch in tqdm(range(epochs), disable=not progress, desc="digits", unit="epoch"):
        order = torch.randperm(len(y_train), generator=gen)
        for k in range(0, len(order), batch):
            idx = order[k:k + batch]
            spikes, _ = net(ts.encode.rate(x_train[idx], steps, generator=gen))
            loss = ts.loss.ce_count(spikes, y_train[idx]) + 1e-3 * ts.loss.l2_rate(spikes)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    seconds = time.perf_counter() - t0
    return {"test_accuracy": evaluate(net, x_test, y_test, steps, seed + 1),
            "train_accuracy": evaluate(net, x_train, y_train, steps, seed + 2),
            "seconds": seconds, "epochs": epochs, "steps": steps, "hidden": hidden,
            "n_train": len(y_train), "n_test": len(y_test), "model": net}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a short run (8 epochs)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = args.epochs or (8 if args.fast else 30)
    out = train(epochs=epochs, seed=args.seed)
    print(f"digits: {out['n_train']} training / {out['n_test']} test images, {epochs} epochs, "
          f"T = {out['steps']} steps, 64-{out['hidden']}-10 LIF network")
    print(f"train accuracy {out['train_accuracy']:.3f}, test accuracy {out['test_accuracy']:.3f}, "
          f"{out['seconds']:.1f} s")
    return out


if __name__ == "__main__":
    main()
