"""Evaluation figures (matplotlib, Agg backend): Dice box plot by subgroup, ref-vs-pred scatter
with identity line, Bland-Altman plots. Each function takes the per-case rows of
``evaluate.evaluate_folder`` and writes one PNG atomically; scatter and Bland-Altman plots use the
cases with a reference thrombus, like the summary statistics."""
from __future__ import annotations

import numpy as np

from nnunet_thrombus.atomic_io import save_figure
from nnunet_thrombus.evaluation.statistics import bland_altman

_UNITS = {"volume": "mm$^3$", "length": "mm"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def dice_boxplot(rows: list[dict], path, groups=("site", "size_group", "density_group")) -> None:
    """Box plot of per-case Dice (cases with a reference thrombus): all cases, then each subgroup."""
    plt = _plt()
    data, labels = [], []
    seg = [r for r in rows if r["ref_present"]]
    data.append([r["dice"] for r in seg])
    labels.append(f"all\n(n={len(seg)})")
    for key in groups:
        for value in sorted({str(r.get(key)) for r in seg if r.get(key) not in (None, "")}):
            vals = [r["dice"] for r in seg if str(r.get(key)) == value]
            data.append(vals)
            labels.append(f"{value}\n(n={len(vals)})")
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(data)), 3.6))
    ax.boxplot([d if d else [np.nan] for d in data], showfliers=True)
    ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=8)
    ax.set_ylabel("Dice")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Dice by subgroup")
    save_figure(fig, path)
    plt.close(fig)


def _agreement_pairs(rows: list[dict], quantity: str):
    """(unit, reference array, prediction array) of ``quantity`` over the cases with a reference thrombus, the
    same cases as the summary's agreement statistics."""
    key, unit = _key(quantity)
    rows = [r for r in rows if r["ref_present"]]
    return (unit, np.array([r[f"ref_{key}"] for r in rows], float),
            np.array([r[f"pred_{key}"] for r in rows], float))


def scatter_identity(rows: list[dict], quantity: str, path) -> None:
    """Prediction vs reference ``quantity`` ("volume" or "length") with the identity line."""
    plt = _plt()
    unit, ref, pred = _agreement_pairs(rows, quantity)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(ref, pred, s=14)
    hi = float(np.nanmax(np.concatenate([ref, pred, [1.0]])))
    ax.plot([0, hi], [0, hi], "k--", lw=1, label="identity")
    ax.set_xlabel(f"reference {quantity} ({unit})")
    ax.set_ylabel(f"predicted {quantity} ({unit})")
    ax.legend(loc="upper left")
    save_figure(fig, path)
    plt.close(fig)


def bland_altman_plot(rows: list[dict], quantity: str, path) -> None:
    """Bland-Altman plot of ``quantity``: difference (pred - ref) against the pair mean."""
    plt = _plt()
    unit, ref, pred = _agreement_pairs(rows, quantity)
    ba = bland_altman(ref, pred)
    fig, ax = plt.subplots(figsize=(4.5, 3.6))
    ax.scatter((ref + pred) / 2, pred - ref, s=14)
    for y, style in ((ba["bias"], "-"), (ba["loa_low"], "--"), (ba["loa_high"], "--")):
        if np.isfinite(y):
            ax.axhline(y, color="k", ls=style, lw=1)
    ax.set_xlabel(f"mean of reference and prediction ({unit})")
    ax.set_ylabel(f"prediction - reference ({unit})")
    ax.set_title(f"Bland-Altman, {quantity}: bias {ba['bias']:.2f}")
    save_figure(fig, path)
    plt.close(fig)


def _key(quantity: str):
    if quantity not in _UNITS:
        raise ValueError(f"quantity must be 'volume' or 'length', got {quantity!r}")
    return ("volume_mm3" if quantity == "volume" else "length_mm"), _UNITS[quantity]
