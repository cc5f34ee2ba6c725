"""SNN training step: tidesim's ts.nn against snnTorch, in one process (issue 6).

784-1000-10 fully connected LIF network (beta 0.95, threshold 1, subtract reset, fast-sigmoid
surrogate slope 25), batch 128, rate-coded input, T = 25 and T = 100: one training iteration
(forward + cross-entropy on spike counts + backward + Adam), CPU, float32, 1 torch thread. Peak
memory: RSS above the level before the iteration, sampled every ms in a child process whose
allocator returns blocks of 128 KiB or more to the system when freed. Also the
Open Neuromorphic protocol: 1 linear + 1 LIF layer (n -> n), batch 16, T = 500, forward + backward.

    python benchmarks/snn_train.py [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch
from memory import peak_above_start  # benchmarks/memory.py (run from this folder)

import tidesim as ts

B, N_IN, N_HID, N_OUT = 128, 784, 1000, 10


def _tidesim(T: int, checkpoint: int | None, n_in=N_IN, n_hid=N_HID, n_out=N_OUT, batch=B, engine="auto"):
    net = ts.nn.Sequential(torch.nn.Linear(n_in, n_hid), ts.nn.LIF(beta=0.95, engine=engine),
                           torch.nn.Linear(n_hid, n_out), ts.nn.LIF(beta=0.95, engine=engine)) if n_out else \
        ts.nn.Sequential(torch.nn.Linear(n_in, n_hid), ts.nn.LIF(beta=0.95, engine=engine))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def forward(x):
        spikes, _ = net(x, checkpoint=checkpoint)
        return spikes
    return net, opt, forward


def _snntorch(T: int, checkpoint=None, n_in=N_IN, n_hid=N_HID, n_out=N_OUT, batch=B, engine=None):
    import snntorch as snn
    from snntorch import surrogate

    layers = [torch.nn.Linear(n_in, n_hid), snn.Leaky(beta=0.95, spike_grad=surrogate.fast_sigmoid(slope=25))]
    if n_out:
        layers += [torch.nn.Linear(n_hid, n_out),
                   snn.Leaky(beta=0.95, spike_grad=surrogate.fast_sigmoid(slope=25))]
    net = torch.nn.ModuleList(layers)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def forward(x):
        mems = [layer.init_leaky() for layer in net[1::2]]
        out = []
        for t in range(x.shape[0]):
            h = x[t]
            for k in range(0, len(net), 2):
                h, mems[k // 2] = net[k + 1](net[k](h), mems[k // 2])
            out.append(h)
        return torch.stack(out)
    return net, opt, forward


SIDES = {"tidesim": _tidesim, "snntorch": _snntorch}


def _iteration(side: str, T: int, checkpoint: int | None, train: bool = True, **sizes):
    net, opt, forward = SIDES[side](T, checkpoint, **sizes)
    gen = torch.Generator().manual_seed(0)
    batch, n_in = sizes.get("batch", B), sizes.get("n_in", N_IN)
    x = (torch.rand(T, batch, n_in, generator=gen) < 0.2).float()
    n_out = sizes.get("n_out", N_OUT) or sizes.get("n_hid", N_HID)
    y = torch.randint(0, n_out, (batch,), generator=gen)

    def step():
        opt.zero_grad()
        spikes = forward(x)
        loss = torch.nn.functional.cross_entropy(spikes.sum(0), y) if train else spikes.sum()
        loss.backward()
        if train:
            opt.step()
    return step


def timing(side: str, T: int, checkpoint: int | None = None, repeats: int = 5, **sizes) -> float:
    step = _iteration(side, T, checkpoint, **sizes)
    step()  # warm-up: kernels compiled, allocator primed
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t0)
    return best



def _child_memory(side: str, T: int, checkpoint: int | None) -> None:
    torch.set_num_threads(1)
    step = _iteration(side, T, checkpoint)
    step()
    _, peak, _ = peak_above_start(step)
    print(json.dumps({"peak_mib": peak}))


def peak_memory(side: str, T: int, checkpoint: int | None = None) -> float:
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import snn_train as s; s._child_memory({side!r}, {T}, {checkpoint!r})")
    # glibc keeps freed small blocks for reuse, so RSS would miss memory recycled from the warm-up
    # iteration; serving every block of 128 KiB or more by mmap makes RSS follow live tensors.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="T = 25 only, no Open Neuromorphic sizes above 1024")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, float32, batch {B}, {N_IN}-{N_HID}-{N_OUT}")
    for T in (25,) if args.quick else (25, 100):
        t_snn = timing("snntorch", T, repeats=args.repeats)
        t_ts = timing("tidesim", T, repeats=args.repeats)
        m_snn = peak_memory("snntorch", T)
        m_ts = peak_memory("tidesim", T)
        print(f"T={T:3d}  snnTorch {t_snn:.3f} s {m_snn:7.1f} MiB | tidesim {t_ts:.3f} s {m_ts:7.1f} MiB | "
              f"time ratio {t_ts / t_snn:.2f}x, memory ratio {m_ts / m_snn:.2f}x")
        if T == 100:
            k = 10
            t_ck = timing("tidesim", T, checkpoint=k, repeats=args.repeats)
            m_ck = peak_memory("tidesim", T, checkpoint=k)
            print(f"T={T:3d}  tidesim checkpoint={k}: {t_ck:.3f} s {m_ck:7.1f} MiB | memory {m_snn / m_ck:.1f}x "
                  f"less than snnTorch, {m_ts / m_ck:.1f}x less than without checkpointing")
    print("Open Neuromorphic protocol: 1 linear + 1 LIF (n -> n), batch 16, T = 500, forward + backward")
    for n in (512, 1024) if args.quick else (512, 1024, 2048, 4096):
        sizes = dict(n_in=n, n_hid=n, n_out=0, batch=16)
        t_snn = timing("snntorch", 500, repeats=max(1, args.repeats // 2), train=False, **sizes)
        t_ts = timing("tidesim", 500, repeats=max(1, args.repeats // 2), train=False, **sizes)
        print(f"n={n:5d}  snnTorch {t_snn:.3f} s | tidesim {t_ts:.3f} s | ratio {t_ts / t_snn:.2f}x")


if __name__ == "__main__":
    main()
