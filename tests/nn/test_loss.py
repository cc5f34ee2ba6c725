"""Spike losses (ts.loss): hand-computed values, snnTorch parity (values and gradients), surrogate
gradients, and the error paths."""

import math

import pytest
import snntorch.functional as SF  # noqa: E402  (a test dependency: fail, never skip)
import torch

from tidesim import loss, surrogate
from tidesim.core.errors import ShapeError, TidesimError


def _raster(counts_per_step):
    """[T][batch][n] nested lists -> float tensor."""
    return torch.tensor(counts_per_step, dtype=torch.float64)


def _ce(logits, label):
    """Cross-entropy of one sample, by hand."""
    return -logits[label] + math.log(sum(math.exp(z) for z in logits))


# T = 3, batch = 2, n = 4. Counts: sample 0 -> [2, 0, 1, 3], sample 1 -> [0, 3, 1, 1]
S = _raster([[[1, 0, 1, 1], [0, 1, 0, 0]],
             [[1, 0, 0, 1], [0, 1, 1, 0]],
             [[0, 0, 0, 1], [0, 1, 0, 1]]])
Y = torch.tensor([3, 1])


# ---------------------------------------------------------------------------------------------- hand values

def test_ce_count_hand():
    expect = (_ce([2, 0, 1, 3], 3) + _ce([0, 3, 1, 1], 1)) / 2
    assert math.isclose(float(loss.ce_count(S, Y)), expect, rel_tol=1e-12)
    per = loss.ce_count(S, Y, reduction="none")
    assert torch.allclose(per, torch.tensor([_ce([2, 0, 1, 3], 3), _ce([0, 3, 1, 1], 1)], dtype=torch.float64))


def test_ce_count_population_groups_neighbours():
    # population=2: class 0 = outputs 0,1; class 1 = outputs 2,3 -> counts [2, 4] and [3, 2]
    y = torch.tensor([1, 0])
    expect = (_ce([2, 4], 1) + _ce([3, 2], 0)) / 2
    assert math.isclose(float(loss.ce_count(S, y, population=2)), expect, rel_tol=1e-12)
    assert loss.accuracy_count(S, y, population=2) == 1.0
    assert loss.accuracy_count(S, torch.tensor([0, 1]), population=2) == 0.0


def test_ce_rate_hand():
    # per step logits are the spikes themselves; mean over steps and batch
    steps = [([1, 0, 1, 1], [0, 1, 0, 0]), ([1, 0, 0, 1], [0, 1, 1, 0]), ([0, 0, 0, 1], [0, 1, 0, 1])]
    expect = sum(_ce(a, 3) + _ce(b, 1) for a, b in steps) / 6
    assert math.isclose(float(loss.ce_rate(S, Y)), expect, rel_tol=1e-12)
    # population=2, sample 0 step 0: class logits [1, 2]
    steps2 = [([1, 2], [1, 0]), ([1, 1], [1, 1]), ([0, 1], [1, 1])]
    expect = sum(_ce(a, 1) + _ce(b, 0) for a, b in steps2) / 6
    assert math.isclose(float(loss.ce_rate(S, torch.tensor([1, 0]), population=2)), expect, rel_tol=1e-12)


def test_class_weights_follow_torch():
    import torch.nn.functional as F

    w = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    counts = S.sum(0)
    assert torch.allclose(loss.ce_count(S, Y, weight=w), F.cross_entropy(counts, Y, weight=w))
    per_step = sum(F.cross_entropy(S[t], Y, weight=w) for t in range(3)) / 3
    assert torch.allclose(loss.ce_rate(S, Y, weight=w), per_step)


def test_mse_count_hand_and_exact_targets():
    # T = 3, rates 0.8 / 0.2 -> targets 2.4 (label) and 0.6
    c = [[2, 0, 1, 3], [0, 3, 1, 1]]
    tgt = [[0.6, 0.6, 0.6, 2.4], [0.6, 2.4, 0.6, 0.6]]
    expect = sum((c[b][i] - tgt[b][i]) ** 2 for b in range(2) for i in range(4)) / 8 / 3
    assert math.isclose(float(loss.mse_count(S, Y)), expect, rel_tol=1e-12)
    # population=2: class counts [2, 4], [3, 2]; targets T*k*rate = 4.8 / 1.2
    y = torch.tensor([1, 0])
    expect = ((2 - 1.2) ** 2 + (4 - 4.8) ** 2 + (3 - 4.8) ** 2 + (2 - 1.2) ** 2) / 4 / 3
    assert math.isclose(float(loss.mse_count(S, y, population=2)), expect, rel_tol=1e-12)
    # T = 7, correct_rate 0.8: the target is 5.6 spikes; snnTorch truncates it to int(5.6) = 5
    s = torch.zeros(7, 1, 2, dtype=torch.float64)
    s[:5, 0, 0] = 1  # 5 spikes on the labelled output, none elsewhere
    ours = float(loss.mse_count(s, torch.tensor([0]), correct_rate=0.8, incorrect_rate=0.0))
    assert math.isclose(ours, (5 - 5.6) ** 2 / 2 / 7, rel_tol=1e-12)
    assert float(SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.0)(s.float(), torch.tensor([0]))) == 0.0


def test_membrane_losses_hand():
    mem = torch.tensor([[[0.1, 0.5]], [[0.9, -0.2]], [[0.3, 0.4]]], dtype=torch.float64)  # [3, 1, 2]
    assert math.isclose(float(loss.ce_max_membrane(mem, torch.tensor([1]))), _ce([0.9, 0.5], 1), rel_tol=1e-12)
    # labels -> on 1 / off 0 at every step
    expect = ((0.1 - 0) ** 2 + (0.5 - 1) ** 2 + 0.9 ** 2 + 1.2 ** 2 + 0.3 ** 2 + 0.6 ** 2) / 6
    assert math.isclose(float(loss.mse_membrane(mem, torch.tensor([1]))), expect, rel_tol=1e-12)
    static = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    assert math.isclose(float(loss.mse_membrane(mem, static)), expect, rel_tol=1e-12)
    varying = torch.zeros(3, 1, 2, dtype=torch.float64)
    expect0 = (0.01 + 0.25 + 0.81 + 0.04 + 0.09 + 0.16) / 6
    assert math.isclose(float(loss.mse_membrane(mem, varying)), expect0, rel_tol=1e-12)
    assert loss.accuracy_max_membrane(mem, torch.tensor([0])) == 1.0
    assert loss.accuracy_max_membrane(mem, torch.tensor([1])) == 0.0


def test_first_spike_time_values_and_gradient():
    # one batch, three outputs over T = 6: first spikes at 2 (second at 4), at 0 (only), silent
    s = torch.zeros(6, 1, 3, dtype=torch.float64)
    s[2, 0, 0] = s[4, 0, 0] = 1
    s[0, 0, 1] = 1
    s.requires_grad_(True)
    t = loss.first_spike_time(s)
    assert t.tolist() == [[2.0, 0.0, 6.0]]
    t.sum().backward()
    # d t / d s_k = k - f before the first spike, f - f2 at it (f2 = next spike or T), 0 after
    assert s.grad[:, 0, 0].tolist() == [0 - 2, 1 - 2, 2 - 4, 0, 0, 0]
    assert s.grad[:, 0, 1].tolist() == [0 - 6, 0, 0, 0, 0, 0]
    assert s.grad[:, 0, 2].tolist() == [k - 6 for k in range(6)]
    assert loss.first_spike_time(s.detach(), dt=1e-3).tolist() == [[2e-3, 0.0, 6e-3]]


def test_first_spike_losses_hand():
    s = torch.zeros(5, 2, 2, dtype=torch.float64)
    s[1, 0, 0] = s[3, 0, 1] = 1  # sample 0: times [1, 3]
    s[4, 1, 1] = 1  # sample 1: times [5 (silent), 4]
    y = torch.tensor([0, 1])
    expect = (_ce([-1, -3], 0) + _ce([-5, -4], 1)) / 2
    assert math.isclose(float(loss.ce_first_spike(s, y)), expect, rel_tol=1e-12)
    expect = (_ce([-0.5, -1.5], 0) + _ce([-2.5, -2.0], 1)) / 2
    assert math.isclose(float(loss.ce_first_spike(s, y, temperature=2.0)), expect, rel_tol=1e-12)
    target = torch.tensor([[0.0, 4.0], [4.0, 4.0]], dtype=torch.float64)
    expect = (1 + 1 + 1 + 0) / 4
    assert math.isclose(float(loss.mse_first_spike(s, target)), expect, rel_tol=1e-12)
    assert math.isclose(float(loss.mse_first_spike(s, target * 1e-3, dt=1e-3)), expect * 1e-6, rel_tol=1e-9)
    assert loss.accuracy_first_spike(s, y) == 1.0
    assert loss.accuracy_first_spike(s, torch.tensor([1, 0])) == 0.0


def test_regularisers_hand():
    # rates per step: sample 0 [2, 0, 1, 3] / 3, sample 1 [0, 3, 1, 1] / 3
    r = [[2 / 3, 0, 1 / 3, 1], [0, 1, 1 / 3, 1 / 3]]
    flat = [v for row in r for v in row]
    assert math.isclose(float(loss.l1_rate(S)), sum(flat) / 8, rel_tol=1e-12)
    assert math.isclose(float(loss.l1_rate(S, reduction="sum")), sum(flat), rel_tol=1e-12)
    assert math.isclose(float(loss.l2_rate(S)), sum(v * v for v in flat) / 8, rel_tol=1e-12)
    dt = 0.01  # rates in Hz: per step / 0.01
    assert math.isclose(float(loss.l1_rate(S, dt=dt)), sum(flat) / 8 / dt, rel_tol=1e-12)
    # per-neuron rate over batch and time, Hz: [1/3, 1/2, 1/3, 2/3] / 0.01 = [33.3, 50, 33.3, 66.7]
    hz = [100 / 3, 50.0, 100 / 3, 200 / 3]
    low, high = 40.0, 60.0
    pen = [max(low - h, 0) ** 2 + max(h - high, 0) ** 2 for h in hz]
    per_neuron = loss.rate_bounds(S, low, high, dt, reduction="none")
    assert torch.allclose(per_neuron, torch.tensor(pen, dtype=torch.float64))
    assert math.isclose(float(loss.rate_bounds(S, low, high, dt)), sum(pen) / 4, rel_tol=1e-12)


def test_accuracy_ties_count_as_wrong():
    silent = torch.zeros(4, 3, 5)
    assert loss.accuracy_count(silent, torch.tensor([0, 0, 0])) == 0.0
    assert SF.accuracy_rate(silent, torch.tensor([0, 0, 0])) == 1.0  # snnTorch: first maximum wins
    assert loss.accuracy_count(S, Y) == 1.0  # counts [2, 0, 1, 3] label 3, [0, 3, 1, 1] label 1
    assert loss.accuracy_count(S, torch.tensor([0, 1])) == 0.5
    tie = torch.zeros(2, 1, 2)
    tie[0] = 1.0  # both outputs fire once
    assert loss.accuracy_count(tie, torch.tensor([0])) == 0.0 and SF.accuracy_rate(tie, torch.tensor([0])) == 1.0


# ---------------------------------------------------------------------------------------------- snnTorch parity

def _spikes_leaf(seed, shape=(12, 5, 6), p=0.3):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).float()


def _labels(seed, n, batch=5):
    return torch.randint(0, n, (batch,), generator=torch.Generator().manual_seed(seed))


def _same(ours_fn, theirs_fn, x):
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    la, lb = ours_fn(a), theirs_fn(b)
    la.backward()
    lb.sum().backward()
    assert torch.allclose(la, lb.reshape(()), rtol=1e-5, atol=1e-7), (float(la), float(lb.sum()))
    assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-7)
    assert a.grad.abs().sum() > 0


@pytest.mark.parametrize("seed", [0, 1])
def test_count_losses_equal_snntorch(seed):
    s, y = _spikes_leaf(seed), _labels(seed, 6)
    _same(lambda x: loss.ce_count(x, y), lambda x: SF.ce_count_loss()(x, y), s)
    _same(lambda x: loss.ce_rate(x, y), lambda x: SF.ce_rate_loss()(x, y), s)
    # T = 12: T * rate is whole for 0.75 / 0.25, so snnTorch's int() truncation does not bite
    _same(lambda x: loss.mse_count(x, y, 0.75, 0.25), lambda x: SF.mse_count_loss(0.75, 0.25)(x, y), s)
    yp = _labels(seed + 10, 3)
    _same(lambda x: loss.ce_count(x, yp, population=2),
          lambda x: SF.ce_count_loss(population_code=True, num_classes=3)(x, yp), s)
    _same(lambda x: loss.mse_count(x, yp, 0.75, 0.25, population=2),
          lambda x: SF.mse_count_loss(0.75, 0.25, population_code=True, num_classes=3)(x, yp), s)
    assert loss.accuracy_count(s, y) == pytest.approx(SF.accuracy_rate(s, y)) or _has_ties(s, y)


def _has_ties(s, y):
    c = s.sum(0)
    return bool(((c == c.max(1, keepdim=True).values).sum(1) > 1).any())


def test_membrane_losses_equal_snntorch():
    mem = torch.randn(10, 4, 5, generator=torch.Generator().manual_seed(3))
    y = _labels(3, 5, batch=4)
    _same(lambda m: loss.ce_max_membrane(m, y), lambda m: SF.ce_max_membrane_loss()(m, y), mem)
    _same(lambda m: loss.mse_membrane(m, y), lambda m: SF.mse_membrane_loss(on_target=1, off_target=0)(m, y), mem)
    _same(lambda m: loss.mse_membrane(m, y, on_target=0.8, off_target=0.1),
          lambda m: SF.mse_membrane_loss(on_target=0.8, off_target=0.1)(m, y), mem)


def test_l1_rate_and_temporal_values_equal_snntorch():
    s = _spikes_leaf(4)
    T = s.shape[0]
    _same(lambda x: 1e-3 * T * loss.l1_rate(x, reduction="sum"), lambda x: SF.l1_rate_sparsity(1e-3)(x), s)
    s[0] = 1.0  # every output spikes, so snnTorch's silent = T - 1 convention does not enter
    s[0, :, 0] = 0.0
    s[3, :, 0] = 1.0
    y = _labels(5, 6)
    assert torch.allclose(loss.ce_first_spike(s, y), SF.ce_temporal_loss()(s, y))
    tgt = torch.rand(5, 6, generator=torch.Generator().manual_seed(6)) * T
    assert torch.allclose(loss.mse_first_spike(s, tgt) / T ** 2,
                          SF.mse_temporal_loss(target_is_time=True)(s, tgt.clone()))


# --------------------------------------------------------------------------------------------- surrogate gradients

def test_gradients_flow_through_surrogate_spikes():
    g = torch.Generator().manual_seed(0)
    w = (0.5 * torch.randn(8, 6, generator=g, dtype=torch.float64)).requires_grad_(True)
    x = torch.rand(20, 4, 8, generator=g, dtype=torch.float64)
    spike = surrogate.fast_sigmoid()
    mem, v = [], torch.zeros(4, 6, dtype=torch.float64)
    for t in range(20):  # leaky integrate-and-fire, reset by subtraction
        v = 0.9 * v + x[t] @ w
        mem.append(v)
        v = v - spike(v - 1.0).detach()
    mem = torch.stack(mem)
    s = spike(mem - 1.0)
    assert 0 < float(s.detach().mean()) < 1
    y = torch.tensor([0, 1, 2, 3])
    cases = {
        "ce_count": lambda: loss.ce_count(s, y), "ce_rate": lambda: loss.ce_rate(s, y),
        "ce_count_pop": lambda: loss.ce_count(s, torch.tensor([0, 1, 2, 1]), population=2),
        "mse_count": lambda: loss.mse_count(s, y), "ce_max_membrane": lambda: loss.ce_max_membrane(mem, y),
        "mse_membrane": lambda: loss.mse_membrane(mem, y), "ce_first_spike": lambda: loss.ce_first_spike(s, y),
        "mse_first_spike": lambda: loss.mse_first_spike(s, torch.full((4, 6), 3.0)),
        "l1_rate": lambda: loss.l1_rate(s), "l2_rate": lambda: loss.l2_rate(s),
        "rate_bounds": lambda: loss.rate_bounds(s, 400.0, 500.0, 1e-3),
    }
    for name, make in cases.items():
        (grad,) = torch.autograd.grad(make(), w, retain_graph=True)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name


# ---------------------------------------------------------------------------------------------- errors

def test_non_binary_spikes_rejected_surrogate_spikes_accepted():
    bad = S.clone()
    bad[1, 0, 2] = 0.5
    for fn in (loss.ce_count, loss.mse_count, loss.ce_rate, loss.ce_first_spike, loss.accuracy_count):
        with pytest.raises(loss.LossInputError, match=f"non-binary spikes given to {fn.__name__}"):
            fn(bad, Y)
    for fn in (loss.l1_rate, loss.l2_rate, loss.first_spike_time):
        with pytest.raises(loss.LossInputError, match="non-binary spikes"):
            fn(bad)
    assert issubclass(loss.LossInputError, TidesimError)
    ok = S.clone().requires_grad_(True) * 1.0  # 0/1 floats that carry a graph
    assert loss.ce_count(ok, Y).requires_grad
    assert float(loss.ce_count(S.bool(), Y)) == pytest.approx(float(loss.ce_count(S, Y)))


def test_shape_errors():
    with pytest.raises(ShapeError, match=r"\[T, batch, n\]"):
        loss.ce_count(S[0], Y)
    with pytest.raises(ShapeError, match=r"shape \[batch\]"):
        loss.ce_count(S, torch.tensor([0, 1, 2]))
    with pytest.raises(ShapeError, match="multiple"):
        loss.ce_count(S, Y, population=3)
    mem = torch.zeros(5, 2, 4)
    with pytest.raises(ShapeError) as info:
        loss.mse_membrane(mem, torch.zeros(7, 2, 4))
    assert "(5, 2, 4)" in str(info.value) and "(7, 2, 4)" in str(info.value)
    with pytest.raises(ShapeError, match="targets_mem"):
        loss.mse_membrane(mem, torch.zeros(2, 3))
    with pytest.raises(ShapeError, match="not a spike train"):
        loss.mse_first_spike(S, S)
    with pytest.raises(ShapeError, match="target_times"):
        loss.mse_first_spike(S, torch.zeros(3, 4))


def test_value_errors():
    with pytest.raises(loss.LossInputError, match=r"\[0, 3\]"):
        loss.ce_count(S, torch.tensor([0, 4]))
    with pytest.raises(loss.LossInputError, match="integer class labels"):
        loss.ce_count(S, torch.tensor([0.0, 1.0]))
    with pytest.raises(loss.LossInputError, match="reduction"):
        loss.ce_count(S, Y, reduction="avg")
    with pytest.raises(loss.LossInputError, match="correct_rate"):
        loss.mse_count(S, Y, correct_rate=1.5)
    with pytest.raises(loss.LossInputError, match="low <= high"):
        loss.rate_bounds(S, 10.0, 5.0, 1e-3)
    with pytest.raises(loss.LossInputError, match="dt"):
        loss.rate_bounds(S, 1.0, 5.0, 0.0)
    with pytest.raises(loss.LossInputError, match="temperature"):
        loss.ce_first_spike(S, Y, temperature=0.0)
    with pytest.raises(TypeError):
        loss.ce_count(S.tolist(), Y)
