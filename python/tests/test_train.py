"""The training package: β warm-up, optimiser schedule, batch draws, the loss log."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import stemmap
from stemmap._sampling import BatchSampler
from stemmap.train import COLUMNS, Schedule, empty_history, extend
from stemmap.train._history import LossLog


def _schedule(epochs=10, warmup=4, lr_step=3):
    return Schedule(epochs, 0.01, 0.0, lr_step, 0.5, warmup)


def test_beta_warmup_then_linear_to_one():
    s = _schedule(epochs=10, warmup=4)
    betas = [s.beta(e) for e in range(10)]
    assert betas[:5] == [0.0] * 5  # 0 for `warmup` epochs (epoch 4 is (4-4)/6 = 0)
    np.testing.assert_allclose(betas[5:], [(e - 4) / 6 for e in range(5, 10)])
    assert betas[-1] < 1.0 <= s.beta(10)


def test_beta_without_room_for_warmup_rises_from_the_first_epoch():
    s = _schedule(epochs=4, warmup=50)
    assert [s.beta(e) for e in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert [_schedule(epochs=2, warmup=0).beta(e) for e in range(2)] == [0.5, 1.0]


def test_optimizer_steps_the_learning_rate():
    s = _schedule(lr_step=3)
    lrs = [s.lr_at(e) for e in range(7)]
    np.testing.assert_allclose(lrs, [0.01] * 3 + [0.005] * 3 + [0.0025])
    assert s.optimizer([torch.nn.Parameter(torch.zeros(2))]).lr == 0.01
    assert s.settings() == {
        "epochs": 10,
        "lr": 0.01,
        "weight_decay": 0.0,
        "lr_step": 3,
        "lr_gamma": 0.5,
        "warmup": 4,
    }


def _draws(seed, **kw):
    xy = np.stack(np.meshgrid(np.arange(8.0), np.arange(5.0)), -1).reshape(-1, 2)
    args = {"cell_batch_size": 30, "spot_batch_size": 10, "mmd_batch": 12, **kw}
    b = BatchSampler(
        100, args["cell_batch_size"], [xy, xy[:8]], args["spot_batch_size"], args["mmd_batch"], seed
    )
    return [st for _ in range(3) for st in b.epoch()]


def test_batch_sampler_draws_per_step():
    steps = _draws(0)
    assert len(steps) == 6  # one step per slice per epoch
    assert sorted(s.slice for s in steps[:2]) == [0, 1]
    for s in steps:
        assert len(s.cells) == 30
        assert len(set(s.cells.tolist())) == 30
        assert len(s.mmd) == 12
        assert int(s.mmd.max()) < 30  # positions in the cell batch
        # the 8-spot slice is smaller than a patch: used whole
        assert (s.spots is None) == (s.slice == 1)
    big = [s for s in steps if s.slice == 0]
    assert all(len(s.spots[0]) == 10 for s in big)


def test_batch_sampler_same_seed_same_draws():
    a, b, c = _draws(3), _draws(3), _draws(4)

    def key(steps):
        return [(s.slice, s.cells.tolist(), s.mmd.tolist()) for s in steps]

    assert key(a) == key(b)
    assert key(a) != key(c)


def test_batch_sampler_full_batches_draw_nothing_but_the_slice_order():
    steps = _draws(0, cell_batch_size=None, spot_batch_size=None, mmd_batch=1000)
    assert len(steps) == 6
    assert all(s.cells is None for s in steps)
    assert all(s.spots is None for s in steps)
    assert all(s.mmd is None for s in steps)


def test_loss_log_reads_rows_and_stops_on_divergence():
    log = LossLog(start=5)
    log.add(0, torch.tensor([1.0, 0.5, 0.25, 0.25], dtype=torch.float64), 0.0, 0.01)
    log.add(1, torch.tensor([2.0, 1.0, 0.5, 0.5], dtype=torch.float64), 0.5, 0.01)
    assert log.read() == [7, 2.0, 1.0, 0.5, 0.5, 0.5, 0.01]
    assert [r[0] for r in log.rows] == [6, 7]
    hist = extend(empty_history(), log.rows)
    assert list(hist.columns) == list(COLUMNS)
    assert len(extend(hist, log.rows)) == 4
    log.add(2, torch.tensor([float("nan")] * 4, dtype=torch.float64), 1.0, 0.01)
    with pytest.raises(FloatingPointError, match="diverged at epoch 8"):
        log.read()


def test_train_continues_the_epoch_count_and_settings(toy):
    sc, st = toy
    model = stemmap.STEM(sc, st, seed=0, hidden=(16, 8), threads=1)
    model.train(epochs=3, warmup=0)
    model.train(epochs=2, warmup=0, lr=0.001)
    assert model.history["epoch"].tolist() == [1, 2, 3, 4, 5]
    assert model.train_settings["epochs"] == 5
    assert model.train_settings["lr"] == 0.001
    assert model.history["beta"].tolist() == pytest.approx([1 / 3, 2 / 3, 1.0, 0.5, 1.0])


def test_adamw_and_step_rate_are_torch_optims_numbers():
    """stemmap's AdamW and lr_at give the numbers of torch.optim.AdamW(foreach=True) + StepLR."""
    s = Schedule(epochs=9, lr=0.003, weight_decay=0.01, lr_step=4, lr_gamma=0.3, warmup=2)

    def run(ours):
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Linear(5, 7), torch.nn.LayerNorm(7), torch.nn.Linear(7, 2)
        )
        x = torch.randn(16, 5)
        start = [p.detach().clone() for p in net.parameters()]
        if ours:
            opt = s.optimizer(net.parameters())
        else:
            opt = torch.optim.AdamW(net.parameters(), lr=s.lr, weight_decay=0.01, foreach=True)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=s.lr_step, gamma=s.lr_gamma)
        lrs = []
        for ep in range(s.epochs):
            if ours:
                opt.lr = s.lr_at(ep)
            lrs.append(opt.lr if ours else sched.get_last_lr()[0])
            for _ in range(2):
                opt.zero_grad()
                (net(x) ** 2).mean().backward()
                opt.step()
            if not ours:
                sched.step()
        return [p.detach().clone() for p in net.parameters()], lrs, start

    mine, lr_mine, start = run(True)
    ref, lr_ref, _ = run(False)
    assert lr_mine == lr_ref
    assert lr_mine[-1] != lr_mine[0]
    for a, b in zip(mine, ref):
        assert torch.equal(a, b)
    assert all(not torch.equal(a, b) for a, b in zip(mine, start))  # every parameter moved
