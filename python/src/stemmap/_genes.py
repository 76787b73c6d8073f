"""Gene names of SC and ST: which genes are shared, under a matching rule (``gene_match``)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._validate import StemInputWarning, check_choice

#: How gene names of SC and ST are matched (``STEM(gene_match=...)``, R ``gene_match``,
#: CLI ``--gene-match``): ``"exact"`` names, ``"case"`` case-insensitive names (``GAPDH`` =
#: ``Gapdh``), ``"ensembl"`` Ensembl IDs without their version suffix
#: (``ENSMUSG00000057666.3`` = ``ENSMUSG00000057666``). Equal names always match each other;
#: genes that only a rule matches, several to one, are left out with a warning (:func:`match_genes`).
GENE_MATCH = ("exact", "case", "ensembl")
#: A rule that shares at least this many genes and twice as many as the one asked for is
#: suggested (a warning, or in the error when no gene is shared).
FEW_GENES = 20
_ENSEMBL_VERSION = re.compile(r"^(ENS[A-Z]*[0-9]{6,})\.[0-9]+$", re.IGNORECASE)


def check_model_genes(name: str, genes: Sequence[str], found: Any, note: str = "") -> None:
    """ValueError when ``found`` (a container of names) lacks some of a trained model's genes.

    ``note``: appended to the count inside the parentheses (e.g. the gene matching used).
    """
    missing = [g for g in genes if g not in found]
    if missing:
        raise ValueError(
            f"`{name}` lacks {len(missing)} of the {len(genes)} genes the model was trained on "
            f"(e.g. {missing[:3]}{note}); a trained model embeds only data with all of its genes."
        )


def gene_key(name: str, gene_match: str = "exact") -> str:
    """Return the key a gene name is matched by under ``gene_match`` (see :data:`GENE_MATCH`)."""
    if gene_match == "case":
        return name.casefold()
    if gene_match == "ensembl":
        m = _ENSEMBL_VERSION.match(name)
        return m.group(1).upper() if m else name
    return name


def _pair(
    sc_names: Sequence[str], st_names: Sequence[str], gene_match: str
) -> tuple[dict[str, str], list[tuple[list[str], list[str]]]]:
    """Pair the genes of SC and one ST slice under ``gene_match``.

    Returns SC name -> slice name, and the ambiguous groups (SC names, slice names) left out.
    Names that are equal are always paired (an exact match wins over the rule); of the genes
    of one key that remain, one SC gene and one slice gene are paired by the rule; several
    on either side (none exact) are ambiguous and left out.
    """
    by_key: dict[str, tuple[list[str], list[str]]] = {}
    for n in sc_names:
        by_key.setdefault(gene_key(n, gene_match), ([], []))[0].append(n)
    for n in st_names:
        group = by_key.get(gene_key(n, gene_match))
        if group is not None:
            group[1].append(n)
    out: dict[str, str] = {}
    ambiguous = []
    for sc_k, st_k in by_key.values():
        if not st_k:
            continue
        exact = set(sc_k) & set(st_k)
        for n in exact:
            out[n] = n
        sc_rest = [n for n in sc_k if n not in exact]
        st_rest = [n for n in st_k if n not in exact]
        if len(sc_rest) == 1 and len(st_rest) == 1:
            out[sc_rest[0]] = st_rest[0]
        elif sc_rest and st_rest:
            ambiguous.append((sc_rest, st_rest))
    return out, ambiguous


def _match(
    sc_names: Sequence[str], st_genes: Sequence[Sequence[str]], gene_match: str
) -> tuple[list[str], list[dict[str, str]], list[tuple[list[str], list[str]]]]:
    """SC genes paired in every slice (SC order), each slice's pairs, the ambiguous groups."""
    pairs, ambiguous = [], []
    for names in st_genes:
        p, a = _pair(sc_names, names, gene_match)
        pairs.append(p)
        ambiguous += [g for g in a if g not in ambiguous]
    shared = [n for n in sc_names if all(n in p for p in pairs)]
    return shared, pairs, ambiguous


def gene_overlaps(sc_genes: Sequence[str], st_genes: Sequence[Sequence[str]]) -> dict[str, int]:
    """Count the genes SC and every ST slice share under each rule of :data:`GENE_MATCH`."""
    sc_names = [str(g) for g in sc_genes]
    st_names = [[str(g) for g in names] for names in st_genes]
    return {how: len(_match(sc_names, st_names, how)[0]) for how in GENE_MATCH}


@dataclass
class GeneMatch:
    """Genes SC and ST share: SC names (in SC order) and the matching name of each slice."""

    sc: list[str]
    st: list[list[str]]
    gene_match: str
    n_renamed: int  # genes whose SC and ST names differ (matched only by the rule)
    n_ambiguous: int  # groups left out: several genes of one key on a side, none exact


def match_genes(
    sc_genes: Sequence[str],
    st_genes: Sequence[Sequence[str]],
    gene_match: str = "exact",
    genes: Sequence[str] | None = None,
) -> GeneMatch:
    """Match gene names of SC and ST slices; never renames anything.

    A gene whose name is in both SC and a slice is always matched to that name, whatever
    the rule (with ``gene_match="case"``, ``gene0`` of SC matches ``gene0`` of ST even when
    SC also has ``GENE0``). Of the other genes, those with the same key under the rule
    (:func:`gene_key`) are matched when the key names one gene on each side; when it names
    several on a side (``Gapdh`` and ``GAPDH`` in SC, ``gapdh`` in ST; two versions of one
    Ensembl ID), which to pair is ambiguous: they are left out with a
    :class:`~stemmap._validate.StemInputWarning` naming them (keep one of them, or rename,
    to use the gene).

    Parameters
    ----------
    sc_genes, st_genes
        SC gene names and the gene names of each ST slice.
    gene_match
        ``"exact"``, ``"case"`` or ``"ensembl"`` (see :data:`GENE_MATCH`).
    genes
        Genes to keep (an SC or ST name, or another name of the same key under the rule);
        default all shared genes.

    Returns
    -------
    GeneMatch
    """
    check_choice(gene_match, GENE_MATCH, "gene_match")
    sc_names = [str(g) for g in sc_genes]
    st_names = [[str(g) for g in names] for names in st_genes]
    shared, pairs, ambiguous = _match(sc_names, st_names, gene_match)
    if ambiguous:
        shown = "; ".join(f"sc {a} ~ st {b}" for a, b in ambiguous[:3])
        warnings.warn(
            f"under gene_match={gene_match!r}, {len(ambiguous)} gene(s) match several genes of "
            f"`sc` or `st`, none by its exact name, and are left out ({shown}"
            f"{'; ...' if len(ambiguous) > 3 else ''}). Keep one of the duplicates (or make "
            "the names equal) to use them.",
            StemInputWarning,
            stacklevel=4,
        )
    if genes is not None:
        shared = _select(shared, pairs, [str(g) for g in genes], gene_match)
    st_out = [[p[n] for n in shared] for p in pairs]
    renamed = sum(any(s[i] != shared[i] for s in st_out) for i in range(len(shared)))
    return GeneMatch(shared, st_out, gene_match, renamed, len(ambiguous))


def _select(
    shared: list[str], pairs: list[dict[str, str]], genes: list[str], gene_match: str
) -> list[str]:
    """Return the shared SC genes that ``genes`` names (SC order); warn of absent ones.

    A name of ``genes`` selects the shared gene of that SC or slice name (SC names first),
    else every shared gene of its key under ``gene_match``.
    """
    sc_of = {n: n for n in shared}
    for p in pairs:
        for n in shared:
            sc_of.setdefault(p[n], n)
    by_key: dict[str, list[str]] = {}
    for n in shared:
        by_key.setdefault(gene_key(n, gene_match), []).append(n)
    wanted = list(dict.fromkeys(genes))
    chosen: set[str] = set()
    missing = []
    for g in wanted:
        if g in sc_of:
            chosen.add(sc_of[g])
        elif gene_key(g, gene_match) in by_key:
            chosen.update(by_key[gene_key(g, gene_match)])
        else:
            missing.append(g)
    if len(missing) == len(wanted):
        raise ValueError(
            f"none of the {len(wanted)} genes in `genes` are in both `sc` and `st` "
            f"(e.g. {sorted(missing)[:3]}); check the gene identifiers."
        )
    if missing:
        warnings.warn(
            f"{len(missing)} of the {len(wanted)} genes in `genes` are not in both `sc` "
            f"and `st` and are ignored (e.g. {sorted(missing)[:3]}).",
            StemInputWarning,
            stacklevel=5,
        )
    return [n for n in shared if n in chosen]
