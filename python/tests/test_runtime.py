"""CPU runtime settings: denormals flushed during compute, torch threads, OpenMP wait policy."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import stemmap
from stemmap import _runtime


def test_flush_denormals_inside_and_restored():
    torch.set_flush_denormal(False)
    assert not _runtime.denormals_flushed_now()
    with _runtime.flush_denormals():
        assert _runtime.denormals_flushed_now()
    assert not _runtime.denormals_flushed_now()


def test_flush_denormals_keeps_a_caller_who_flushes():
    torch.set_flush_denormal(True)
    try:
        with _runtime.flush_denormals():
            assert _runtime.denormals_flushed_now()
        assert _runtime.denormals_flushed_now()
    finally:
        torch.set_flush_denormal(False)


def test_training_and_readout_restore_caller_state(toy):
    sc, st = toy
    torch.set_flush_denormal(False)
    before = torch.get_num_threads()
    seen = {}

    class Probe(stemmap.STEM):
        def _adjacency(self, *a, **k):  # runs inside train()
            seen["flush"] = _runtime.denormals_flushed_now()
            seen["threads"] = torch.get_num_threads()
            return super()._adjacency(*a, **k)

    model = Probe(sc, st, seed=0, hidden=(16, 8), threads=1)
    model.train(epochs=2)
    assert seen == {"flush": True, "threads": 1}
    m = model.mapping()
    assert m.threads == 1
    _ = m.coords
    assert torch.get_num_threads() == before
    assert not _runtime.denormals_flushed_now()


def test_small_steps_train_on_one_thread():
    cpu = torch.device("cpu")
    assert _runtime.step_threads(None, cpu, 356, 33) == 1  # osmFISH, 256-cell batches
    assert _runtime.step_threads(None, cpu, 800, 500) == 1
    assert _runtime.step_threads(None, cpu, 801, 33) is None  # more rows: all CPUs
    assert _runtime.step_threads(None, cpu, 500, 1000) is None  # wide input: all CPUs
    assert _runtime.step_threads(2, cpu, 100, 10) is None  # the caller's count is kept
    assert _runtime.step_threads(None, torch.device("meta"), 100, 10) is None  # not a CPU


@pytest.mark.parametrize("threads", [None, 2])
def test_training_threads_follow_the_step_size(toy, monkeypatch, threads):
    sc, st = toy
    before = torch.get_num_threads()
    monkeypatch.setattr(_runtime, "usable_cpus", lambda: 2)
    seen = []

    class Probe(stemmap.STEM):
        def _adjacency(self, *a, **k):  # runs inside the training loop
            seen.append(torch.get_num_threads())
            return super()._adjacency(*a, **k)

    model = Probe(sc, st, seed=0, hidden=(16, 8), threads=threads)
    model.train(epochs=2)
    expected = 1 if threads is None else 2  # the toy step is small; an explicit count is kept
    assert seen
    assert set(seen) == {expected}
    assert model.train_settings["threads"] == expected
    assert torch.get_num_threads() == before


def test_same_result_with_and_without_flush(toy):
    # flushing denormals changes nothing beyond float noise
    sc, st = toy
    out = []
    for flush in (False, True):
        saved = _runtime.flush_denormals
        if not flush:
            import contextlib

            _runtime.flush_denormals = contextlib.nullcontext
        try:
            model = stemmap.STEM(sc, st, seed=3, hidden=(32, 16), threads=1)
            model.train(epochs=60, warmup=0)
            out.append((model.history["loss"].to_numpy(), model.mapping().coords))
        finally:
            _runtime.flush_denormals = saved
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-4)
    np.testing.assert_allclose(out[0][1], out[1][1], atol=1e-3)


def test_history_has_every_epoch(toy):
    sc, st = toy
    model = stemmap.STEM(sc, st, seed=0, hidden=(16, 8), threads=1)
    model.train(epochs=23, warmup=5)
    h = model.history
    assert h["epoch"].tolist() == list(range(1, 24))
    assert np.all(np.isfinite(h[["loss", "extract", "trans", "mmd"]].to_numpy()))
    beta = h["beta"].to_numpy()
    np.testing.assert_allclose(
        h["loss"], h["extract"] + 0.5 * h["mmd"] + beta * h["trans"], rtol=1e-5
    )


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_threads_must_be_positive_integer(toy, bad):
    sc, st = toy
    with pytest.raises((TypeError, ValueError), match="`threads`"):
        stemmap.STEM(sc, st, threads=bad)


def test_choose_threads():
    assert _runtime.choose_threads(3) == (3, "requested")
    n, why = _runtime.choose_threads(None)
    assert 1 <= n <= max(os.cpu_count() or 1, 1)
    assert "usable CPUs" in why
    assert 1 <= _runtime.usable_cpus() <= (os.cpu_count() or 1)


def test_spinning_threads_give_way_to_busy_jobs(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setattr(_runtime, "usable_cpus", lambda: 4)
    monkeypatch.setattr(_runtime, "_other_runnable", lambda: 2)
    assert _runtime.choose_threads(None)[0] == 2
    monkeypatch.setattr(_runtime, "_other_runnable", lambda: 9)
    assert _runtime.choose_threads(None)[0] == 1
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert _runtime.choose_threads(None)[0] == 4  # the load does not matter then


def _env_after(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_import_sets_passive_openmp_only_before_torch():
    show = "import os; print(os.environ.get('OMP_WAIT_POLICY'))"
    assert _env_after(f"import stemmap; {show}") == "PASSIVE"
    assert _env_after(f"import torch, stemmap; {show}") == "None"


def test_mixed_precision_trains_and_is_recorded(toy):
    sc, st = toy
    model = stemmap.STEM(sc, st, seed=0, hidden=(32, 16), threads=1)
    model.train(epochs=5, mixed_precision=True)
    assert np.all(np.isfinite(model.history["loss"].to_numpy()))
    assert model.train_settings["mixed_precision"] is True
    assert np.isfinite(model.mapping().coords).all()
    with pytest.raises(TypeError, match="`mixed_precision`"):
        model.train(epochs=1, mixed_precision="yes")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [({"avx512f", "avx512_bf16"}, True), ({"amx_bf16"}, True), ({"avx2", "avx512f"}, False)],
)
def test_mixed_precision_auto_follows_the_cpu(monkeypatch, toy, flags, expected):
    from stemmap import _device

    monkeypatch.setattr(_device, "_cpu_flags", lambda: frozenset(flags))
    sc, st = toy
    model = stemmap.STEM(sc, st, seed=0, hidden=(32, 16), threads=1, device="cpu")
    model.train(epochs=2)  # the default is "auto"
    assert model.train_settings["mixed_precision"] is expected
    model.train(epochs=1, mixed_precision=False)
    assert model.train_settings["mixed_precision"] is False


def test_more_threads_than_cpus_warn_once_and_are_kept(toy, monkeypatch):
    # threads=1000 on 2 CPUs ran 3x slower with no word (issue 26)
    from stemmap import StemInputWarning, _validate

    sc, st = toy
    monkeypatch.setattr(_runtime, "usable_cpus", lambda: 2)
    monkeypatch.setattr(_validate, "_WARNED_THREADS", set(), raising=False)
    with pytest.warns(StemInputWarning, match=r"`threads=1000` is more than the 2 CPU\(s\)"):
        model = stemmap.STEM(sc, st, hidden=(8,), threads=1000)
    assert model.threads == 1000  # an explicit count is kept
    with warnings.catch_warnings():
        warnings.simplefilter("error", StemInputWarning)
        stemmap.STEM(sc, st, hidden=(8,), threads=1000)  # once
        stemmap.STEM(sc, st, hidden=(8,), threads=2)  # not more than the CPUs
    with pytest.warns(StemInputWarning, match="`threads=3`"):
        assert _validate.check_threads(3) == 3  # what StemMapping(threads=) checks with
