"""The COBA benchmark network (Brette et al. 2007; 4000 LIF neurons, conductance synapses) in torch and in
Brian2: the same connectivity, different random initial values, so the two runs agree in statistics
(mean firing rate, mean CV of the inter-spike intervals, measured with elephant), not spike by spike."""

import elephant.statistics as es
import neo
import numpy as np
import pytest
import quantities as pq
import torch

from tidesim.network.examples import coba

DURATION, DT = 1.0, 1e-4
RECORD = {"exc": [], "inh": []}


def _statistics(result, duration: float) -> tuple[float, float]:
    """Mean firing rate (Hz) and mean CV of ISIs (neurons with at least 3 spikes) over a population."""
    trains = [neo.SpikeTrain(np.asarray(t) * pq.s, t_stop=duration * pq.s) for t in result.spike_trains]
    rate = float(np.mean([es.mean_firing_rate(st).rescale(pq.Hz).magnitude for st in trains]))
    cvs = [es.cv(es.isi(st).magnitude) for st in trains if len(st) >= 3]
    return rate, float(np.mean(cvs))


@pytest.mark.slow
@pytest.mark.brian2
def test_coba_rates_and_cv_agree_with_brian2():
    runs = {
        # net.run's torch engine, float64 (the eager engine until the dispatch picks the compiled one)
        "torch": coba(seed=0, init_seed=1).run(DURATION, DT, record=RECORD),
        "compiled": coba(seed=0, init_seed=3).run(DURATION, DT, record=RECORD,
                                         dtype=torch.float32, engine="compiled"),
        # Brian2's numpy target: ~3 s, no compilation
        "brian2": coba(seed=0, init_seed=2).run(DURATION, DT, record=RECORD, backend="brian2", target="numpy"),
    }
    stats = {(engine, pop): _statistics(res[pop], DURATION) for engine, res in runs.items() for pop in RECORD}
    for pop in RECORD:
        rate_ref, cv_ref = stats[("brian2", pop)]
        assert 5 < rate_ref < 50 and 0.3 < cv_ref < 2, (pop, rate_ref, cv_ref)  # asynchronous irregular
        for engine in ("torch", "compiled"):
            rate, cv = stats[(engine, pop)]
            assert abs(rate - rate_ref) <= 0.1 * rate_ref, (engine, pop, rate, rate_ref)
            assert abs(cv - cv_ref) <= 0.1 * cv_ref, (engine, pop, cv, cv_ref)
