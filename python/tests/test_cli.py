"""The command line: map, demo, info, and exit codes for bad input."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pytest

from stemmap.cli import main


def run_map(files, *extra, sc="sc.h5ad", st="st.h5ad", out="o.h5ad"):
    """``stemmap map`` on files in the fixture folder, quietly, plus ``extra`` arguments."""
    args = ["map", "--sc", str(files / sc), "--st", str(files / st), "--out", str(files / out)]
    return main([*args, "--quiet", *extra])


def test_map_writes_results(files):
    rc = run_map(
        files,
        "--epochs",
        "2",
        "--label-key",
        "celltype",
        "--save-model",
        str(files / "m.pt"),
        out="res/out.h5ad",
    )
    assert rc == 0
    sc = ad.read_h5ad(files / "res" / "out.h5ad")
    st = ad.read_h5ad(files / "res" / "out_st.h5ad")
    assert sc.obsm["stem_spatial"].shape == (sc.n_obs, 2)
    assert "stem_best_spot" in sc.obs
    assert "stem_history" in sc.uns
    np.testing.assert_allclose(st.obsm["stem_deconvolution"].sum(1), 1.0, atol=1e-5)
    assert (files / "m.pt").exists()


def test_bad_files_exit_2(files, capsys):
    assert run_map(files, sc="missing.h5ad") == 2
    assert "--sc: file not found" in capsys.readouterr().err
    (files / "junk.h5ad").write_text("not hdf5")
    assert run_map(files, st="junk.h5ad") == 2
    assert "not a readable .h5ad" in capsys.readouterr().err


def test_bad_content_exit_2(files, capsys):
    assert run_map(files, "--spatial-key", "nope", "--epochs", "1") == 2
    assert "obsm['nope']" in capsys.readouterr().err


def test_demo_on_generated_data(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMMAP_SHARED_DATA", str(tmp_path / "nothing-here"))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "3", "--quiet"]) == 0
    for f in ("positions.png", "loss.png", "deconvolution.png", "report.md", "metrics.json"):
        assert (out / f).stat().st_size > 0
    res = json.loads((out / "metrics.json").read_text())
    assert res["stemmap"]["MAE (grid steps)"] > 0


def test_info(capsys):
    assert main(["info"]) == 0
    assert '"torch"' in capsys.readouterr().out


def test_map_preset_sets_schedule_sigma_and_readout(files):
    assert run_map(files, "--preset", "fast", "--save-model", str(files / "f.pt")) == 0
    import stemmap

    fast = stemmap.STEM.load(files / "f.pt")
    assert len(fast.history) == stemmap.PRESETS["fast"]["epochs"]
    assert fast.settings["preset"] == "fast"
    assert fast.settings["sigma_scale"] == 1.0
    assert (
        run_map(files, "--epochs", "1", "--sigma-scale", "0.5", "--save-model", str(files / "h.pt"))
        == 0
    )
    half = stemmap.STEM.load(files / "h.pt")
    assert half.settings["sigma"][0] == pytest.approx(0.5 * fast.settings["sigma"][0])
    assert run_map(files, "--epochs", "1", "--sigma-scale", "0") == 2


def test_map_rounds_reaches_the_readout(files, capsys):
    assert run_map(files, "--epochs", "2", "--rounds", "1") == 0
    sc = ad.read_h5ad(files / "o.h5ad")
    assert stemmap_settings(sc)["mapping"]["rounds"] == 1
    assert run_map(files, "--epochs", "1", "--rounds", "0") == 2
    assert "rounds" in capsys.readouterr().err


def stemmap_settings(adata):
    from stemmap._layout import settings_from_uns

    return settings_from_uns(adata.uns["stem"])
