"""Shared look of the paper's figures: sizes for an A4 text block, colours, saving PNG + PDF."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# Text width of the rendered paper (A4, 2 cm margins) in inches; figures are drawn at this width so
# that the font sizes below are the sizes the reader sees.
TEXT_WIDTH = 6.7
PNG_DPI = 200
CLASS_COLORS = ("#0072B2", "#E69F00")   # Figure 1: class 0 blue, class 1 orange
BOUNDARY_COLOR = "#009E73"
IG_CMAP = "inferno"                     # dark for low attribution, bright for high
TINT = np.array([0.35, 0.6, 1.0])      # blue tint of factual images


def setup() -> None:
    """Matplotlib defaults for all figures (embedded TrueType fonts in PDFs)."""
    logging.getLogger("fontTools").setLevel(logging.WARNING)   # PDF font subsetting chatter
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    plt.rcParams.update({
        "font.size": 8,
        "axes.titlesize": 8,
        "axes.labelsize": 8,
        "xtick.labelsize": 7,
        "ytick.labelsize": 7,
        "legend.fontsize": 7,
        "figure.dpi": 100,
        "savefig.dpi": PNG_DPI,
        "pdf.fonttype": 42,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "figure.constrained_layout.use": False,
        "svg.hashsalt": "ctpaper",
    })


def save(fig, png: str | Path, pdf: str | Path) -> None:
    """Write ``fig`` as PNG (``PNG_DPI``) and PDF, each atomically; close the figure."""
    from ctpaper.runtime import atomic_path

    for path, fmt in ((png, "png"), (pdf, "pdf")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=PNG_DPI, bbox_inches="tight", pad_inches=0.03,
                        metadata={"CreationDate": None} if fmt == "pdf" else None)
    plt.close(fig)


def to_unit(x: np.ndarray) -> np.ndarray:
    """MNIST pixels in [-1, 1] -> display intensities (x + 1) / 2 in [0, 1]."""
    return np.clip((np.asarray(x, dtype=float) + 1.0) / 2.0, 0.0, 1.0)


def grey_rgb(img01: np.ndarray) -> np.ndarray:
    """A [0, 1] grey image as RGB."""
    return np.repeat(np.asarray(img01, dtype=float)[..., None], 3, axis=-1)


def tint_blue(img01: np.ndarray) -> np.ndarray:
    """A [0, 1] grey image as RGB tinted blue (marks the factual in image grids)."""
    return np.asarray(img01, dtype=float)[..., None] * TINT[None, None, :]


def image_axis(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)
