"""training.png: train and validation bits per character by epoch."""

from __future__ import annotations

from pathlib import Path


def plot_history(history: list[dict], path: Path, title: str) -> Path | None:
    """Draw the curves; returns the path, or None when there is nothing to draw."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    ax.plot(epochs, [h["train_bpc"] for h in history], marker="o", ms=3, label="train")
    val = [(h["epoch"], h["val_bpc"]) for h in history if h.get("val_bpc") is not None]
    if val:
        ax.plot(*zip(*val), marker="o", ms=3, label="validation")
        best = min(val, key=lambda p: p[1])
        ax.annotate(f"best {best[1]:.3f}", best, textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("bits per character")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
