"""Large-data mode: spot patches, automatic batches, DistributedDataParallel on gloo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

import stemmap
from stemmap._sampling import PatchSampler


def test_patch_sampler_alternates_patches_and_spread_subsets():
    xy = np.stack(np.meshgrid(np.arange(10.0), np.arange(10.0)), -1).reshape(-1, 2)
    ps = PatchSampler(xy, 9)
    gen = torch.Generator().manual_seed(0)
    idx, coarsen = ps.sample(gen)  # first: a contiguous patch at full resolution
    assert coarsen == 1.0
    assert len(idx) == 9 == len(set(idx.tolist()))
    pts = xy[idx]
    # the 9 nearest grid points of any anchor lie within distance 2 of it
    assert np.ptp(pts[:, 0]) <= 4
    assert np.ptp(pts[:, 1]) <= 4
    spreads = []
    for _ in range(20):  # then: random subsets over the whole slice, σ widened by √(n/size)
        idx, coarsen = ps.sample(gen)
        assert coarsen == pytest.approx(np.sqrt(100 / 9))
        assert len(idx) == 9 == len(set(idx.tolist()))
        spreads.append(np.ptp(xy[idx][:, 0]))
        idx, coarsen = ps.sample(gen)
        assert coarsen == 1.0
        assert np.ptp(xy[idx][:, 0]) <= 4
    assert np.mean(spreads) > 5  # spread subsets span most of the slice


def test_coarse_adjacency_widens_sigma(toy):
    sc, st = toy
    model = stemmap.STEM(sc, st, hidden=(8,))
    sl = model.data.slices[0]
    idx = np.arange(0, sl.x.shape[0], 3)
    fine, coarse = model._adjacency(sl, idx), model._adjacency(sl, idx, coarsen=2.0)
    from stemmap._kernels import spatial_adjacency

    expect = spatial_adjacency(
        sl.coords[idx], "gaussian", sigma=2.0 * sl.sigma, scale=2.0 * sl.sigma
    )
    torch.testing.assert_close(coarse, expect)
    # a wider kernel spreads each spot's similarity: lower diagonal share
    assert coarse.diagonal().mean() < fine.diagonal().mean()


def test_spot_patches_train(toy):
    sc, st = toy
    model = stemmap.STEM(sc, st, seed=0, hidden=(32, 16))
    model.train(epochs=4, spot_batch_size=12, cell_batch_size=100)
    assert model.train_settings["spot_batch_size"] == 12
    m = model.mapping()  # outputs always cover every spot
    assert m.sc_to_st.shape == (sc.n_obs, st.n_obs)


def test_batches_chosen_automatically(toy, monkeypatch, caplog):
    sc, st = toy
    model = stemmap.STEM(sc, st, seed=0, hidden=(16, 8))
    model.data.sc_x = np.concatenate([model.data.sc_x] * 2)  # 600 cells > 256
    model.data.sc_names = model.data.sc_names * 2
    full = model.memory_estimate()
    small = model.memory_estimate(256, 256)
    assert small < full
    # batches keep all inputs resident: their bytes are part of the estimate
    g, n = len(model.data.genes), model.data.n_spots
    assert small == stemmap._device.full_batch_bytes(256, n, g, (16, 8)) + 4 * (600 + n) * g
    # memory enough for batches only: training switches to batches with a message
    monkeypatch.setattr("stemmap._device.available_memory", lambda device: int(small / 0.6) + 1)
    assert model.memory_estimate() > small / 0.6
    model.train(epochs=1)
    assert model.train_settings["cell_batch_size"] == 256


def test_batches_chosen_for_time(toy, monkeypatch, caplog):
    sc, st = toy
    model = stemmap.STEM(sc, st, seed=0, hidden=(16, 8))
    model.data.sc_x = np.concatenate([model.data.sc_x] * 2)  # 600 cells
    model.data.sc_names = model.data.sc_names * 2
    # a very slow device: a full-batch step would take far longer than the 1 s limit
    monkeypatch.setattr("stemmap._device.device_flops", lambda device: 1e5)
    secs = model.step_time_estimate()
    assert secs > 1.0
    assert model.step_time_estimate(256, 32) < secs
    with caplog.at_level("WARNING", logger="stemmap"):
        model.train(epochs=1, progress=False)
    bc, bn = model.train_settings["cell_batch_size"], model.train_settings["spot_batch_size"]
    assert bc == 256  # the floor; all 43 spots (fewer than 256) stay
    assert bn is None
    assert "would take about" in caplog.text
    assert "force full batches" in caplog.text
    # explicit sizes are honoured whatever the estimate
    model.train(epochs=1, cell_batch_size=600, progress=False)
    assert model.train_settings["cell_batch_size"] == 600


def test_estimate_resources():
    cpu = stemmap.estimate_resources(2_000, 300, 200, device="cpu")
    assert cpu["cell_batch_size"] is None
    assert cpu["spot_batch_size"] is None
    assert cpu["reason"] == ""
    assert cpu["step_bytes"] == cpu["full_batch_bytes"]
    assert cpu["total_seconds"] == pytest.approx(400 * cpu["step_seconds"])
    big = stemmap.estimate_resources(100_000, 5_000, 2_000, device="cpu")
    assert big["cell_batch_size"] < 100_000
    assert big["spot_batch_size"] < 5_000
    assert big["step_seconds"] <= 1.0 < big["full_batch_step_seconds"]
    assert big["step_bytes"] < big["full_batch_bytes"]
    assert "would take about" in big["reason"] or "free" in big["reason"]
    # explicit batch sizes are checked, not replaced
    fixed = stemmap.estimate_resources(100_000, 5_000, 2_000, device="cpu", cell_batch_size=512)
    assert fixed["cell_batch_size"] == 512
    assert fixed["reason"] == ""
    with pytest.raises(MemoryError, match="needs about"):
        stemmap.estimate_resources(10**7, 10**6, 2_000, device="cpu", cell_batch_size=10**7)
    with pytest.raises(ValueError, match="n_spots"):
        stemmap.estimate_resources(10, 0, 5)


def test_step_time_estimate_scales():
    from stemmap._device import step_flops

    base = step_flops(10_000, 500, 351, (512, 256, 128))
    # N^2 M dominates once the spots are in the thousands: 8x the spots -> > 20x the work
    assert step_flops(10_000, 4000, 351, (512, 256, 128)) > 20 * base
    assert step_flops(20_000, 500, 351, (512, 256, 128)) == pytest.approx(2 * base, rel=0.05)


def _ddp_worker(rank: int, world: int, store: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    stemmap.settings.progress = False
    sc, st = stemmap.datasets.toy_data(seed=0)
    model = stemmap.STEM(sc, st, seed=0, hidden=(16, 8), device="cpu")
    model.train(epochs=3, cell_batch_size=120)
    torch.save({k: v.clone() for k, v in model.module.state_dict().items()}, f"{out}.{rank}")
    dist.destroy_process_group()


def test_distributed_two_gloo_processes(tmp_path):
    store, out = str(tmp_path / "store"), str(tmp_path / "state")
    mp.spawn(_ddp_worker, args=(2, store, out), nprocs=2, join=True)
    a, b = torch.load(f"{out}.0"), torch.load(f"{out}.1")
    for k in a:
        torch.testing.assert_close(a[k], b[k])  # gradients were averaged across processes
    # and the processes drew different batches: one process alone ends elsewhere
    stemmap.settings.progress = False
    sc, st = stemmap.datasets.toy_data(seed=0)
    single = stemmap.STEM(sc, st, seed=0, hidden=(16, 8), device="cpu")
    single.train(epochs=3, cell_batch_size=120)
    w = single.module.state_dict()
    assert any(not torch.allclose(w[k], a[k]) for k in a)


@pytest.mark.parametrize("bad", [0, -5, 2.5])
def test_bad_batch_sizes(toy, bad):
    sc, st = toy
    model = stemmap.STEM(sc, st, hidden=(8,))
    with pytest.raises(
        (ValueError, TypeError), match="`spot_batch_size` must be a positive integer"
    ):
        model.train(epochs=1, spot_batch_size=bad)


def test_estimate_resources_for_a_device_not_present():
    # planning an 80 GiB GPU on a CPU-only machine: no CUDA needed when the memory is given
    gpu = stemmap.estimate_resources(1_000_000, 20_000, 351, device="cuda", memory_bytes=80 * 2**30)
    assert gpu["device"] == "cuda"
    assert gpu["free_bytes"] == 80 * 2**30
    assert gpu["cell_batch_size"] is not None
    assert gpu["step_bytes"] <= 0.6 * 80 * 2**30
    # the resident inputs (1M cells × 351 genes, float32) are part of the step's bytes
    assert gpu["step_bytes"] > 4 * 1_000_000 * 351
    small = stemmap.estimate_resources(
        1_000_000, 20_000, 351, device="cuda", memory_bytes=8 * 2**30
    )
    assert small["cell_batch_size"] <= gpu["cell_batch_size"]
    with pytest.raises(MemoryError):
        stemmap.estimate_resources(1_000_000, 20_000, 351, device="cpu", memory_bytes=2**20)
    with pytest.raises(ValueError, match="memory_bytes"):
        stemmap.estimate_resources(10, 5, 3, device="cpu", memory_bytes=-1)
