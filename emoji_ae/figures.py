"""Figures for the report and for `dvc plots`: image grids and learning curves."""

import textwrap

import matplotlib

matplotlib.use("Agg")  # no display on CI machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from emoji_ae.files import atomic_path  # noqa: E402

# Written PNGs carry no timestamp, so equal figures are equal files (DVC hashes them).
PNG_METADATA = {"Software": None}


def as_image(x) -> np.ndarray:
    """A (C, H, W) tensor (uint8, or float in [0, 1]) or an (H, W, C) uint8 array, as (H, W, C) floats."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.float() / 255 if x.dtype == torch.uint8 else x.clamp(0, 1)
        return x.permute(1, 2, 0).numpy()
    return np.asarray(x, dtype=np.float32) / 255


def save_figure(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata=PNG_METADATA, bbox_inches="tight")
    plt.close(fig)


def save_grid(path, rows, row_titles=None, col_titles=None, title=None, cell=1.1) -> None:
    """A grid of images: rows[r][c] is a tensor/array or None for an empty cell."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols + 0.8, cell * n_rows + 0.5), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(row) and row[c] is not None:
                ax.imshow(as_image(row[c]), interpolation="nearest")
            if col_titles and r == 0 and c < len(col_titles):
                ax.set_title(textwrap.fill(col_titles[c], 16), fontsize=7)
        if row_titles:
            axes[r][0].set_ylabel(textwrap.fill(row_titles[r], 14), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def save_curves(path, panels: list[dict], title: str) -> None:
    """Side-by-side line plots; each panel is {title, ylabel, series: {label: (x, y)}}."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for label, (x, y) in panel["series"].items():
            ax.plot(x, y, label=label)
        ax.set_title(panel["title"], fontsize=9)
        ax.set_xlabel(panel.get("xlabel", "epoch"))
        ax.set_ylabel(panel["ylabel"])
        if panel.get("log"):
            ax.set_yscale("log")
        if panel.get("logx"):
            ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def save_scatter(path, panels: list[dict], points: list[dict], title: str) -> None:
    """Points, one per measured run, in panels side by side (each {"x", "y", "xlabel", "ylabel"} and an
    optional horizontal "reference": (value, label)); each point {"label", "group", and the panels'
    keys}, coloured by group and named in a legend beside the axes (labels on the points overlap
    where runs land close together). The x axes are logarithmic: errors span decades."""
    fig, axes = plt.subplots(1, len(panels), figsize=(7 + 4 * len(panels), 4.8), squeeze=False)
    groups = list(dict.fromkeys(p["group"] for p in points))
    colours = plt.get_cmap("tab10")
    markers = "osD^vP*Xh<>"
    for ax, panel in zip(axes[0], panels):
        for i, p in enumerate(points):
            ax.scatter([p[panel["x"]]], [p[panel["y"]]], s=45, marker=markers[i % len(markers)],
                       color=colours(groups.index(p["group"]) % 10), label=textwrap.fill(p["label"], 44))
        if panel.get("reference"):
            value, label = panel["reference"]
            ax.axhline(value, color="grey", linestyle="--", linewidth=1)
            ax.text(0.01, value, label, transform=ax.get_yaxis_transform(), fontsize=8, color="grey", va="bottom")
        ax.set_xscale("log")
        ax.set_xlabel(panel["xlabel"])
        ax.set_ylabel(panel["ylabel"])
        ax.grid(alpha=0.3, which="both")
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
