"""User experience: gene matching rules, progress lines outside a terminal, image plots."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest

import stemmap
from stemmap._data import GENE_MATCH, gene_key, gene_overlaps, match_genes
from stemmap._progress import LineProgress, progress_bar
from stemmap._validate import StemInputWarning
from stemmap.cli import main


def _renamed(adata, fn):
    out = adata.copy()
    out.var_names = [fn(g) for g in adata.var_names]
    return out


def _ensembl(i: int, version: bool) -> str:
    return f"ENSMUSG{57000 + i:011d}" + (f".{i % 4 + 1}" if version else "")


@pytest.mark.parametrize(
    ("name", "how", "key"),
    [
        ("GAPDH", "case", "gapdh"),
        ("Gapdh", "case", "gapdh"),
        ("ENSMUSG00000057666.3", "ensembl", "ENSMUSG00000057666"),
        ("ENSMUSG00000057666", "ensembl", "ENSMUSG00000057666"),
        ("ensg00000111640.15", "ensembl", "ENSG00000111640"),
        ("Gapdh.2", "ensembl", "Gapdh.2"),  # not an Ensembl ID: unchanged
        ("Gapdh", "exact", "Gapdh"),
    ],
)
def test_gene_key(name, how, key):
    assert gene_key(name, how) == key


def test_match_genes_keeps_sc_names_and_counts_renamed():
    gm = match_genes(["Gapdh", "Actb", "Xist", "mt-Co1"], [["ACTB", "GAPDH", "Other"]], "case")
    assert gm.sc == ["Gapdh", "Actb"]
    assert gm.st == [["GAPDH", "ACTB"]]
    assert gm.n_renamed == 2
    # two SC genes that only differ by case are ambiguous under "case": left out
    gm = match_genes(["Gapdh", "GAPDH", "Actb"], [["ACTB", "gapdh"]], "case")
    assert gm.sc == ["Actb"]
    assert gm.n_ambiguous == 1
    assert gene_overlaps(["A", "b"], [["a", "B"]]) == {"exact": 0, "case": 2, "ensembl": 0}


def test_bad_gene_match_names_argument(toy):
    sc, st = toy
    with pytest.raises(ValueError, match="`gene_match` must be one of"):
        stemmap.STEM(sc, st, gene_match="fuzzy")
    assert set(GENE_MATCH) == {"exact", "case", "ensembl"}


def test_case_mismatch_error_suggests_rule_and_rule_matches(toy):
    sc, st = toy
    st_up = _renamed(st, str.upper)
    before = list(st_up.var_names)
    with pytest.raises(ValueError, match=r"share no gene names.*gene_match='case'.*share 40"):
        stemmap.STEM(sc, st_up)
    model = stemmap.STEM(sc, st_up, gene_match="case", seed=0, hidden=(16, 8))
    assert model.data.genes == list(map(str, sc.var_names))  # SC names kept
    assert list(st_up.var_names) == before  # the caller's genes are not renamed
    assert model.settings["gene_match"] == "case"
    assert model.settings["genes_matched_by_rule"] == 40
    # same data as exact matching on identical names
    ref = stemmap.STEM(sc, st, seed=0, hidden=(16, 8))
    np.testing.assert_array_equal(model.data.slices[0].x, ref.data.slices[0].x)


def test_ensembl_versions_and_partial_overlap_warns(toy):
    sc, st = toy
    n = sc.n_vars
    sc_e = sc.copy()
    sc_e.var_names = [_ensembl(i, True) for i in range(n)]
    st_e = st.copy()
    # 6 genes share versioned IDs (at least MIN_SHARED_GENES = 5, or STEM refuses to train)
    st_e.var_names = [_ensembl(i, i < 6) for i in range(n)]
    with pytest.warns(StemInputWarning, match=r"share only 6 gene names.*'ensembl'"):
        small = stemmap.STEM(sc_e, st_e, seed=0, hidden=(16, 8))
    assert len(small.data.genes) == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error", StemInputWarning)
        model = stemmap.STEM(sc_e, st_e, gene_match="ensembl", seed=0, hidden=(16, 8))
    assert len(model.data.genes) == n
    assert model.settings["genes_matched_by_rule"] == n - 6


def test_cli_gene_match(toy, tmp_path):
    sc, st = toy
    sc.write_h5ad(tmp_path / "sc.h5ad")
    _renamed(st, str.upper).write_h5ad(tmp_path / "st.h5ad")
    args = ["map", "--sc", str(tmp_path / "sc.h5ad"), "--st", str(tmp_path / "st.h5ad")]
    args += ["--out", str(tmp_path / "o.h5ad"), "--quiet", "--epochs", "2"]
    assert main(args) == 2  # no shared names: bad input
    assert main([*args, "--gene-match", "case"]) == 0


def test_line_progress_prints_each_step_once():
    buf = io.StringIO()
    bar = LineProgress(total=40, desc="STEM training", file=buf, unit="epoch")
    for ep in range(40):
        bar.update(1)
        if ep % 10 == 0:
            bar.set_postfix(loss=f"{ep:.3f}", refresh=False)
    bar.close()
    bar.close()  # closing twice prints nothing more
    lines = buf.getvalue().splitlines()
    assert "\r" not in buf.getvalue()
    assert len(lines) == 10  # 10 %, ..., 90 % and the final line
    assert lines[0].startswith("STEM training: 4/40 epochs (10%)")
    assert lines[-1].startswith("STEM training: 40/40 epochs (100%)")
    assert lines[-1].endswith("; epoch 31: loss 30.000")  # the step the values are from
    assert lines[0].endswith("; epoch 1: loss 0.000")
    assert len(set(lines)) == len(lines)


def test_progress_bar_uses_lines_off_terminal(monkeypatch):
    buf = io.StringIO()  # not a terminal
    monkeypatch.setattr("sys.stderr", buf)
    with progress_bar(total=5, desc="work", enable=True, unit="step") as bar:
        assert isinstance(bar, LineProgress)
        bar.update(5)
    assert buf.getvalue().splitlines() == [buf.getvalue().splitlines()[-1]]
    assert buf.getvalue().startswith("work: 5/5 steps (100%)")


def _tissue(h: int = 60, w: int = 80) -> np.ndarray:
    """A small picture: red grows left to right, blue top to bottom."""
    img = np.zeros((h, w, 3))
    img[:, :, 0] = np.linspace(0, 1, w)[None, :]
    img[:, :, 2] = np.linspace(0, 1, h)[:, None]
    img[:, :, 1] = 0.5
    return img


def _with_image(st, scalef: float = 0.1):
    """``st`` in full-resolution pixels (coordinates × 100) with a scanpy-style image."""
    st = st.copy()
    xy = np.asarray(st.obsm["spatial"], dtype=float)
    xy = (xy - xy.min(0)) / np.ptp(xy, 0).max() * 500 + 100  # 100..600 full-res pixels
    st.obsm["spatial"] = xy
    st.uns["spatial"] = {
        "lib1": {
            "images": {"lowres": _tissue()},
            "scalefactors": {"tissue_lowres_scalef": scalef, "spot_diameter_fullres": 20.0},
        }
    }
    return st


def test_positions_on_scanpy_image(toy):
    from stemmap import plotting

    sc, st = toy
    st_img = _with_image(st)
    img, sf, lib = plotting.tissue_image(st_img)
    assert img.shape == (60, 80, 3)
    assert sf == 0.1
    assert lib == "lib1"
    coords = np.asarray(st_img.obsm["spatial"])[: sc.n_obs % st.n_obs + 5]
    labels = [f"type {i % 3}" for i in range(len(coords))]
    fig = plotting.positions(coords, labels, image=st_img, palette={f"type {i}": c for i, c in
                                                                    enumerate("rgb")})  # fmt: skip
    ax = fig.axes[0]
    assert len(ax.images) == 1
    assert ax.images[0].get_array().shape[:2] == (60, 80)
    pts = ax.collections[-1].get_offsets()
    np.testing.assert_allclose(pts, coords * 0.1)  # full-res pixels -> low-res image pixels
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # image rows grow downwards
    with pytest.raises(ValueError, match="no tissue image"):
        plotting.positions(coords, image=st)
    with pytest.raises(KeyError, match="img_key='hires'"):
        plotting.tissue_image(st_img, img_key="hires")


def test_palette_defaults_and_errors():
    from stemmap import plotting

    col, cats, lut = plotting._colours([f"t{i}" for i in range(18)])
    assert len(set(lut.values())) == 18
    assert set(lut.values()) <= set(plotting.KELLY)
    with pytest.raises(ValueError, match="one per label"):
        plotting._colours(["a", "b", "c"], palette=["red"])
    with pytest.raises(ValueError, match="no colour for labels"):
        plotting._colours(["a", "b"], palette={"a": "red"})


def test_loss_curve_stacks_weighted_terms(trained):
    from stemmap import plotting

    h = trained.history
    fig = plotting.loss_curve(h, alpha=0.5)
    ax = fig.axes[0]
    # the top of the stack (last PolyCollection) follows the total loss
    verts = ax.collections[-1].get_paths()[0].vertices
    upper = pd.DataFrame(verts, columns=["x", "y"]).groupby("x")["y"].max()
    want = h.set_index("epoch")["loss"].astype(float)
    np.testing.assert_allclose(upper.loc[want.index.to_numpy(dtype=float)], want, rtol=1e-5)
    assert any(p.get_label() == "total" for p in ax.get_lines())
