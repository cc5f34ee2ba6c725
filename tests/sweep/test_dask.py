"""Sweeps and fit_many as Dask tasks: the single-process results, retried failures, reported
failures, a killed worker's chunks rerun, and an unreachable scheduler named in the error.

The fast tests use a 2-worker LocalCluster of threads (processes=False: starts in well under a
second on a 2-core CI machine; the simulations' C loops release the GIL). The slow test uses
client="local" (worker processes with nannies) and kills a worker process mid-sweep.
"""

import functools
import os
import socket
import time

import distributed  # a dependency: a missing install fails, never skips
import numpy as np
import pandas as pd
import pytest

import tidesim as ts
from tidesim import sweep
from tidesim.fitting import fit_many
from tidesim.sweep.cluster import SchedulerUnreachableError, TasksFailedError

PROTOCOL = dict(amplitudes=[0.7e-9, 1.1e-9], start=0.02, stop=0.17, duration=0.2)
QUICK_FIT = dict(sweeps=[4, 6, 8], window=(0.1, 0.7), dt=2e-4, n_starts=8, max_iter=3, method="de")
FIT_PARAMS = {"a": (0, 10e-9), "b": (0, 200e-12), "VT": (-60e-3, -40e-3)}


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def adex():
    return ts.models.get("adex")


@pytest.fixture(scope="module")
def points():
    return sweep.grid(a=np.linspace(0, 8e-9, 12), b=np.linspace(0, 150e-12, 10))


def test_sweep_on_two_workers_equals_single_process(adex, points, client):
    protocol = sweep.steps(**PROTOCOL)
    here = sweep(adex, points, protocol, n_per_chunk=15, progress=False)
    there = sweep(adex, points, protocol, n_per_chunk=15, progress=False, client=client)
    assert there.attrs["chunks"] == 8
    pd.testing.assert_frame_equal(there, here, check_exact=True)
    assert here.rate.max() > 10 and here.attrs["nan_counts"] == there.attrs["nan_counts"]
    assert len(client.scheduler_info()["workers"]) == 2


def test_noisy_model_same_seed_same_result_on_dask(client):
    import brian2 as b2

    noisy = ts.NeuronModel(
        equations="""dv/dt = (E_L - v + R*I)/tau_m + sigma*xi*tau_m**-0.5 : volt (unless refractory)
                     I : amp""",
        threshold="v > V_th", reset="v = V_reset", refractory=2 * b2.ms,
        parameters={"E_L": -70 * b2.mV, "R": 100 * b2.Mohm, "tau_m": 10 * b2.ms, "V_th": -50 * b2.mV,
                    "V_reset": -65 * b2.mV, "sigma": 3 * b2.mV},
        initial={"v": -70 * b2.mV}, method="euler", name="noisy-lif")
    points = sweep.grid(sigma=[1e-3, 4e-3, 8e-3], tau_m=[8e-3, 15e-3])
    protocol = sweep.steps([0.3e-9, 0.4e-9], start=0.01, stop=0.05, duration=0.05)
    kw = dict(n_per_chunk=3, progress=False, measures=["spike_count", "first_spike_latency"])
    here = sweep(noisy, points, protocol, seed=7, **kw)
    there = sweep(noisy, points, protocol, seed=7, client=client, **kw)
    pd.testing.assert_frame_equal(there, here, check_exact=True)
    other = sweep(noisy, points, protocol, seed=8, **kw)
    assert not other.first_spike_latency.equals(here.first_spike_latency)  # the seed matters: noise is drawn
    assert here.spike_count.sum() > 20


def test_fit_many_on_two_workers_equals_sequential(adex, client):
    names = ["regular_spiking", "axon_steps"]
    seq = fit_many(adex, names, FIT_PARAMS, seed=3, **QUICK_FIT)
    par = fit_many(adex, names, FIT_PARAMS, seed=3, client=client, **QUICK_FIT)
    assert list(par.index) == names and (par.status == "ok").all()
    cols = ["a", "b", "VT", "loss", "n_sweeps"]
    pd.testing.assert_frame_equal(par[cols], seq[cols], check_exact=True)
    # each row is the fit of that recording alone
    alone = ts.fit(adex, ts.datasets.load_bundled("axon_steps"), FIT_PARAMS, seed=3, **QUICK_FIT)
    assert par.loc["axon_steps", "fit"].best_params == alone.best_params
    assert par.loc["axon_steps", "loss"] == alone.loss
    fit = par.loc["regular_spiking", "fit"]
    assert isinstance(fit, ts.FitResult) and fit.model.parameters["a"] == par.loc["regular_spiking", "a"]
    assert len(fit.score(baseline=False)) == 3  # the returned FitResult works (its training sweeps)
    assert par.attrs["units"] == {"a": "S", "b": "A", "VT": "V"}


def test_fit_many_reports_a_failed_fit(adex, client):
    rec = ts.datasets.load_bundled("axon_steps")
    kw = dict(QUICK_FIT, per_recording={"silent": {"sweeps": [0]}})  # sweep 0 (-100 pA) has no spikes
    table = fit_many(adex, {"cell": rec, "silent": "regular_spiking"}, FIT_PARAMS, on_error="report", **kw)
    assert table.loc["cell", "status"] == "ok" and np.isfinite(table.loc["cell", "loss"])
    status = table.loc["silent", "status"]
    assert status.startswith("failed: FitError") and "no spikes" in status
    assert np.isnan(table.loc["silent", "a"]) and table.loc["silent", "fit"] is None
    with pytest.raises(TasksFailedError, match="recording 'silent': FitError") as info:
        fit_many(adex, {"cell": rec, "silent": "regular_spiking"}, FIT_PARAMS, client=client, **kw)
    assert list(info.value.partial.index) == ["cell"]
    assert info.value.partial.loc["cell", "a"] == table.loc["cell", "a"]


def flaky_count(train, marker):
    """Fails the first time it runs anywhere (no marker file yet), then counts spikes."""
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("failed once")
        raise RuntimeError("transient failure (first attempt)")
    return float(len(train))


def test_failed_task_is_retried(adex, points, client, tmp_path):
    protocol = sweep.steps(**PROTOCOL)
    marker = tmp_path / "flaky"
    measure = ("n", functools.partial(flaky_count, marker=str(marker)))
    there = sweep(adex, points, protocol, n_per_chunk=30, progress=False, client=client, retries=2,
                  measures=["spike_count", measure])
    assert marker.exists()  # it did fail once
    pd.testing.assert_series_equal(there["n"], there["spike_count"], check_names=False)
    here = sweep(adex, points, protocol, n_per_chunk=30, progress=False, measures=["spike_count", measure])
    pd.testing.assert_frame_equal(there, here, check_exact=True)


def broken_for_big_b(train):
    """Raises on trains of 4+ spikes: only some chunks hit it."""
    if train.size >= 4:
        raise RuntimeError("measure bug")
    return float(train.size)


def test_failing_tasks_are_reported_and_finished_ones_kept(adex, client, tmp_path):
    protocol = sweep.steps([1.0e-9], start=0.02, stop=0.17, duration=0.2)
    # rows 0-9: b = 400 pA, big adaptation, few spikes; rows 10-19: b = 0, many spikes
    points = pd.DataFrame({"b": [400e-12] * 10 + [0.0] * 10, "a": np.linspace(0, 2e-9, 20)})
    few = sweep(adex, points.iloc[:10], protocol, progress=False, measures=["spike_count"])
    many = sweep(adex, points.iloc[10:], protocol, progress=False, measures=["spike_count"])
    assert few.spike_count.max() < 4 <= many.spike_count.min()  # the premise of this test
    with pytest.raises(TasksFailedError) as info:
        sweep(adex, points, protocol, n_per_chunk=5, progress=False, client=client, retries=1, cache_dir=tmp_path,
              measures=["spike_count", ("fragile", broken_for_big_b)])
    err = info.value
    assert sorted(err.failed) == ["chunk 2 (points 10-14)", "chunk 3 (points 15-19)"]
    assert "2 of 4 tasks failed after 1 retries" in str(err) and "measure bug" in str(err)
    assert "chunk 2 (points 10-14)" in str(err) and str(tmp_path) in str(err)
    assert sorted(err.partial.point) == list(range(10))  # what finished is returned ...
    assert len(list(tmp_path.glob("*.npz"))) == 2  # ... and kept for a rerun


def test_unreachable_scheduler_names_the_address(adex, points):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    t0 = time.perf_counter()
    with pytest.raises(SchedulerUnreachableError, match=f"'{address}'"):
        sweep(adex, points, sweep.steps(**PROTOCOL), progress=False, client=address, connect_timeout=2)
    assert time.perf_counter() - t0 < 15
    with pytest.raises(SchedulerUnreachableError, match="scheduler at 'tcp://127.0.0.1:"):
        fit_many(adex, ["axon_steps"], FIT_PARAMS, client=address, connect_timeout=1, **QUICK_FIT)


KILLER = '''
import os


def kills_worker_once(train, marker):
    """The first call anywhere takes its worker process down with it."""
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os._exit(13)
    return float(len(train))
'''


@pytest.mark.slow
def test_killed_worker_chunks_are_rerun(adex, points, tmp_path, monkeypatch):
    # The measure lives in a module the worker processes can import (tests/ is not a package they
    # see): written to tmp_path, which their PYTHONPATH names.
    (tmp_path / "killer_measure.py").write_text(KILLER)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    monkeypatch.syspath_prepend(str(tmp_path))
    import killer_measure

    marker = tmp_path / "killed"
    measure = ("n", functools.partial(killer_measure.kills_worker_once, marker=str(marker)))
    protocol = sweep.steps(**PROTOCOL)
    there = sweep(adex, points, protocol, n_per_chunk=20, progress=False, client="local",
                  measures=["rate", "isi_cv", measure])
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker process died
    here = sweep(adex, points, protocol, n_per_chunk=20, progress=False, measures=["rate", "isi_cv", measure])
    pd.testing.assert_frame_equal(there, here, check_exact=True)


KILLER_LOSS = '''
import os

import tidesim as ts


def loss(out, data, marker=None):
    """The sub-threshold trace error; the first call anywhere takes its worker process down with it."""
    if marker is not None and not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os._exit(13)
    return ts.fitting.TraceMSE()(out, data)
'''


@pytest.mark.slow
def test_eight_fits_survive_a_killed_worker_identical_to_serial(tmp_path, monkeypatch):
    (tmp_path / "killer_loss.py").write_text(KILLER_LOSS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    monkeypatch.syspath_prepend(str(tmp_path))
    import killer_loss

    lif = ts.models.get("lif")
    recs = {f"cell{k}": ts.datasets.synthetic(lif, {"tau_m": (8 + 3 * k) * 1e-3, "R": 120e6},
                                              protocol=[0.1e-9, 0.3e-9], duration=0.15, noise=0.3e-3, seed=k)
            for k in range(8)}
    bounds = {"tau_m": (5e-3, 40e-3), "R": (30e6, 300e6)}
    marker = tmp_path / "killed"
    kw = dict(method="de", n_starts=8, max_iter=3, seed=1)
    there = fit_many(lif, recs, bounds, client="local", retries=2,
                     loss=functools.partial(killer_loss.loss, marker=str(marker)), **kw)
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker process died mid-way
    here = fit_many(lif, recs, bounds, loss=functools.partial(killer_loss.loss, marker=None), **kw)
    assert list(there.index) == list(recs) and (there.status == "ok").all()  # none lost, none twice
    pd.testing.assert_frame_equal(there[["tau_m", "R", "loss"]], here[["tau_m", "R", "loss"]], check_exact=True)
