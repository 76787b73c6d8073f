"""Reports: markdown tables, CSV files, number formatting and the machine line.

Every report says when and how it was made and on which machine, with the 1-minute load
average: the benchmark machine is shared, so times are comparable within one run only.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import platform
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)


def machine_description(device: str = "cpu") -> str:
    """Describe the machine in one line: OS, CPU model, cores, memory, torch, GPU, Python.

    Parameters
    ----------
    device
        The device runs use (a GPU's name is added for ``"cuda..."``).

    Returns
    -------
    str
        The line.
    """
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    desc = f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores{mem}"
    try:
        import torch

        desc += f"; torch {torch.__version__}"
        if device.startswith("cuda") and torch.cuda.is_available():
            desc += f"; GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return desc + f"; Python {platform.python_version()}"


def generated(script: str, argv: Sequence[str] | None = None) -> str:
    """Return ``Generated <time> by `benchmarks/<script>` (`<arguments>`)``."""
    args = " ".join(sys.argv[1:] if argv is None else argv) or "defaults"
    return (
        f"Generated {dt.datetime.now().isoformat(timespec='seconds')} by "
        f"`benchmarks/{script}` (`{args}`)"
    )


def mean_sd(values: Iterable[Any], spec: str = ".2f", sd_spec: str | None = None) -> str:
    """Format mean ± sd of the non-missing values (the mean alone for one, "–" for none).

    Parameters
    ----------
    values
        Numbers (e.g. one metric over seeds).
    spec, sd_spec
        Format specs of the mean and of the sd (default: ``spec``).

    Returns
    -------
    str
        The cell text.
    """
    v = pd.Series(list(values), dtype=float).dropna()
    if v.empty:
        return "–"
    mean = format(v.mean(), spec)
    return mean if len(v) == 1 else f"{mean} ± {format(v.std(), sd_spec or spec)}"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]] = ()) -> list[str]:
    """Return a markdown table: the header, its rule and the rows, one line each."""
    return [md_row(header), "|" + "---|" * len(header), *(md_row(r) for r in rows)]


def md_row(cells: Sequence[Any]) -> str:
    """Return one markdown table row."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def write_report(path: Path, lines: list[str], echo: bool = True) -> None:
    """Write a markdown report (creating its folder) and echo it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    if echo:
        print("\n".join(lines))


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Write a table as CSV (creating its folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)


def write_tables(df: pd.DataFrame, out: Path, stem: str, write_md: Callable[[Path], None]) -> None:
    """Write ``out/<stem>.csv`` (every row) and ``out/<stem>.md`` (``write_md(path)``).

    Parameters
    ----------
    df
        The result rows.
    out
        The folder (created).
    stem
        The files' name.
    write_md
        Writes the markdown report to the path it is given.
    """
    write_csv(df, out / f"{stem}.csv")
    write_md(out / f"{stem}.md")
    logger.info("wrote %s", out / f"{stem}.md")


def record(rows: list[dict[str, Any]], row: dict[str, Any], *prefix: Any) -> None:
    """Append a result row and print it with floats rounded to 3 decimals (progress)."""
    rows.append(row)
    rounded = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
    print(*prefix, rounded, flush=True)


def frame(rows: list[dict[str, Any]], csv: Path) -> pd.DataFrame:
    """Make the result table of a run and write it as CSV (creating its folder)."""
    df = pd.DataFrame(rows)
    write_csv(df, csv)
    return df


def heading(title: str, *text: str) -> list[str]:
    """Return the first lines of a report: ``# title``, then the text as one paragraph."""
    return [f"# {title}", "", "".join(text), ""]


def means_tables(
    df: pd.DataFrame,
    key: str,
    cols: Mapping[str, str],
    extra: Callable[[pd.DataFrame], pd.Series] | None = None,
) -> list[str]:
    """Return one markdown table per (data, split): the mean over seeds of each ``key`` value.

    Parameters
    ----------
    df
        Result rows with ``data``, ``split``, ``key`` and metric columns.
    key
        The column that names a row of the tables (e.g. ``"variant"``).
    cols
        Metric columns → headers; a table shows those with a value in its (data, split).
    extra
        One more column computed from the table of means (a named Series, shown ``.2f``).

    Returns
    -------
    list of str
        ``## data, split``, the table (``n``: rows averaged) and a blank line, per table;
        a missing mean shows as "–".
    """
    lines: list[str] = []
    for (d, split), sub in df.groupby(["data", "split"], sort=False):
        use = [c for c in cols if c in sub and sub[c].notna().any()]
        g = sub.groupby(key, sort=False)
        mean, n = g[use].mean(), g.size()
        more = extra(mean) if extra is not None else None
        head = [cols[c] for c in use] + ([str(more.name)] if more is not None else [])
        lines += [
            f"## {d}, {split}",
            "",
            f"| {key} | n | " + " | ".join(head) + " |",
            "|---|---|" + "---|" * len(head),
        ]
        for v in mean.index:
            vals = [f"{mean.loc[v, c]:.3f}" if pd.notna(mean.loc[v, c]) else "–" for c in use]
            if more is not None:
                vals.append(f"{more[v]:.2f}")
            lines.append(f"| {v} | {n[v]} | " + " | ".join(vals) + " |")
        lines.append("")
    return lines


def quiet_busy(quiet: float, busy: float, spec: str = ".3f") -> list[str]:
    """Format one timing measured quiet and beside competing load, and their ratio.

    Parameters
    ----------
    quiet, busy
        The two times.
    spec
        Their format spec.

    Returns
    -------
    list of str
        quiet, busy and busy / quiet.
    """
    return [format(quiet, spec), format(busy, spec), f"{busy / quiet:.2f}×"]


def load_span(before: float, after: float) -> str:
    """Format the 1-minute load average before → after a run."""
    return f"{before:.1f}→{after:.1f}"


def plot_positions(
    data: dict[str, Any],
    preds: dict[str, np.ndarray],
    notes: dict[str, str],
    labels: dict[str, str],
    path: Path,
) -> None:
    """Plot true vs predicted cell positions, one panel a method, coloured by cell type.

    Parameters
    ----------
    data
        The data set (``true_coords``, ``labels``, ``name``, sizes).
    preds
        Method -> predicted coordinates.
    notes
        Method -> a line under its title (e.g. its scores).
    labels
        Method -> title.
    path
        The PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = pd.Categorical(data["labels"])
    cmap = plt.get_cmap("tab20").colors + plt.get_cmap("tab20b").colors
    cmap = cmap + plt.get_cmap("tab20c").colors
    colors = np.asarray(cmap)[np.asarray(cats.codes) % len(cmap)]
    panels = [("true positions", data["true_coords"], "")]
    panels += [(labels[m], xy, notes.get(m, "")) for m, xy in preds.items()]
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n + 2.6, 4.6), squeeze=False)
    for ax, (title, xy, note) in zip(axes[0], panels):
        ax.scatter(xy[:, 0], xy[:, 1], c=colors, s=2, linewidths=0, rasterized=True)
        ax.set_title(title + (f"\n{note}" if note else ""), fontsize=9)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=cmap[i % len(cmap)], markersize=4, label=c)
        for i, c in enumerate(cats.categories)
    ]
    fig.legend(
        handles=handles,
        loc="center right",
        fontsize=6,
        frameon=False,
        ncol=1 if len(handles) <= 26 else 2,
    )
    fig.suptitle(
        f"{data['name']}: {data['n_cells']} cells, {data['n_spots']} pseudo spots (first seed)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1 - 2.4 / (3.4 * n + 2.6), 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
