"""The benchmarked methods: one table, kept as data.

An entry is a :class:`Method`: a label for the tables, a driver in ``benchmarks/drivers/``
and the environment it runs in, or (``source``) another readout of a model that another
method trained and saved. A new method is a few lines here plus its driver.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """One benchmarked method.

    Parameters
    ----------
    label
        Its name in the tables.
    driver
        Driver file in ``benchmarks/drivers/`` (None for a ``source`` entry).
    env
        ``(name, pip requirement)`` of its environment in ``benchmarks/.envs/``; None: the
        interpreter running the benchmark (stemmap installed).
    stem
        A STEM implementation: it gets ``--sigma`` = ``sigma_mult`` × the data's σ (half the
        mean nearest-neighbour spot distance).
    sigma_mult
        Multiple of the data's σ; None: the driver's (the library's) default σ.
    readouts
        Further readouts the stemmap driver saves beside its output (``<out>.<readout>.npz``).
    extra
        Further driver arguments.
    source
        ``(method, readout)``: no run; the saved ``readout`` output of ``method``'s run.
    epochs
        Epochs of this method whatever the run's ``--epochs`` (None: the run's).
    abundance
        The method estimates cell-type abundances per spot, not a cell mapping: its driver's
        ``sc_to_st`` spreads each spot's abundance of a type over the cells of that type, so
        compositions and held-out genes are scored, placements are not.
    deterministic
        The same output for every seed: benchmarks may run it once and use it for all seeds.
    """

    label: str
    driver: str | None = None
    env: tuple[str, str] | None = None
    stem: bool = False
    sigma_mult: float | None = 1.0
    readouts: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    source: tuple[str, str] | None = None
    epochs: int | None = None
    abundance: bool = False
    deterministic: bool = False


#: cell2location's spatial-model epochs on the CPU (``bench_yardstick.py --c2l-study``)
C2L_EPOCHS = 1000
STEMMAP = "stemmap_driver.py"

METHODS: dict[str, Method] = {
    # stemmap's defaults: σ = 1 × the mean NN spot distance, hybrid readout, spatial SC–SC
    # adjacency; also saved: the 0.1 default readout and the paper's
    "stemmap": Method(
        "stemmap", STEMMAP, stem=True, sigma_mult=None, readouts=("hybrid_log", "paper")
    ),
    # the same models read out with stemmap 0.1's hybrid readout (log-expression profile)
    "stemmap_log": Method(
        "stemmap, 0.1 readout (log profile)", stem=True, source=("stemmap", "hybrid_log")
    ),
    # the same models read out with the paper's readout (σ = 1 × NN, not the paper preset)
    "stemmap_paper_readout": Method(
        "stemmap, paper readout", stem=True, source=("stemmap", "paper")
    ),
    # the publication's settings: σ = ½ × NN, its schedule, its readout and adjacency
    "stemmap_paper": Method(
        "stemmap, preset paper", stem=True, source=("stemmap_sigma05", "paper")
    ),
    # σ = ½ × NN (the paper's) with the default hybrid readout: the σ ablation; also saved:
    # the paper readout (= preset paper: same σ and schedule)
    "stemmap_sigma05": Method("stemmap, σ = ½ × NN", STEMMAP, stem=True, readouts=("paper",)),
    # the fast preset (bench_speed.py), both readouts
    "stemmap_fast": Method(
        "stemmap, preset fast",
        STEMMAP,
        stem=True,
        extra=("--preset", "fast"),
        readouts=("paper",),
    ),
    "stemmap_fast_paper": Method(
        "stemmap, preset fast, paper readout", stem=True, source=("stemmap_fast", "paper")
    ),
    # the quick preset (bench_fast_setting.py): its schedule, encoder and readout, default σ
    "stemmap_quick": Method(
        "stemmap, preset quick", STEMMAP, stem=True, sigma_mult=None, extra=("--preset", "quick")
    ),
    # float32 training (mixed_precision=False): the default before "auto" (the ablation of
    # bfloat16 products on CPUs that have them)
    "stemmap_fp32": Method(
        "stemmap, float32 training",
        STEMMAP,
        stem=True,
        sigma_mult=None,
        extra=("--mixed-precision", "off"),
    ),
    # the yardstick's (bench_yardstick.py): the default and preset quick without the extra
    # readouts and with a short SC-SC neighbour list (placement, compositions and held-out
    # genes need only the mapping)
    "stemmap_y": Method(
        "stemmap (default)", STEMMAP, stem=True, sigma_mult=None, extra=("--adjacency-k", "10")
    ),
    "stemmap_quick_y": Method(
        "stemmap, preset quick",
        STEMMAP,
        stem=True,
        sigma_mult=None,
        extra=("--preset", "quick", "--adjacency-k", "10"),
    ),
    "stemmap_1thread": Method("stemmap, threads=1", STEMMAP, stem=True, extra=("--threads", "1")),
    "stem_ref": Method(
        "STEM reference (scSTEM 0.0.2)",
        "stem_reference_driver.py",
        ("scstem", "scSTEM==0.0.2"),
        stem=True,
    ),
    "tangram": Method("Tangram", "tangram_driver.py", ("tangram", "tangram-sc")),
    "novosparc": Method("novoSpaRc", "novosparc_driver.py", ("novosparc", "novosparc")),
    # TACCO's "mapping single cells into space": every cell its own category, method OT
    "tacco": Method(
        "TACCO 0.5.0 (OT, every cell its own category)",
        "tacco_driver.py",
        ("tacco", "tacco==0.5.0"),
        deterministic=True,
    ),
    # moscot's spatial mapping tutorial: fused GW, SC PCA vs spot coordinates, α 0.5, ε 0.01
    "moscot": Method(
        "moscot 0.5.2 (FGW, α 0.5, ε 0.01)", "moscot_driver.py", ("moscot", "moscot==0.5.2")
    ),
    "baseline": Method("baseline (best-correlated spot)", "baseline_driver.py", deterministic=True),
    # cell2location's reference regression + spatial model (N cells per spot from the data,
    # detection_alpha 20); pyro-ppl 1.9 removed an import cell2location 0.1.5 uses
    "cell2location": Method(
        f"cell2location 0.1.5 ({C2L_EPOCHS} epochs; abundances)",
        "cell2location_driver.py",
        ("cell2location", "cell2location==0.1.5 pyro-ppl>=1.8,<1.9"),
        epochs=C2L_EPOCHS,
        abundance=True,
    ),
}

#: the methods of ``run_benchmark.py`` by default (the speed study's variants are extra)
DEFAULT_METHODS = [
    m
    for m in METHODS
    if m
    not in (
        "stemmap_fast",
        "stemmap_fast_paper",
        "stemmap_quick",
        "stemmap_1thread",
        "stemmap_fp32",
        "cell2location",
        "stemmap_y",
        "stemmap_quick_y",
    )
]


def label(name: str) -> str:
    """Return the table label of a method (the name itself when not in the table)."""
    return METHODS[name].label if name in METHODS else name
