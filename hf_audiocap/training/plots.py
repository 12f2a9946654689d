"""The training-curves figure: loss, perplexity and the main caption metric over steps."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_training_curves(
    log_history: list[dict],
    path: str | Path,
    main_metric: str = "eval_cider_d",
    train_loss_label: str = "training loss",
) -> Path:
    """Draws three panels from `TrainerState.log_history` and writes them to `path` (PNG)."""

    def series(key):
        points = [(e["step"], e[key]) for e in log_history if key in e and "step" in e]
        return [p[0] for p in points], [p[1] for p in points]

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    for key, label in (("loss", train_loss_label), ("eval_loss", "validation loss")):
        x, y = series(key)
        if x:
            ax.plot(x, y, marker="o" if key == "eval_loss" else None, label=label)
    ax.set_title("Loss (cross-entropy)")
    ax.set_xlabel("step")
    ax.legend()
    x, y = series("eval_perplexity")
    axes[1].plot(x, y, marker="o", color="tab:orange")
    axes[1].set_title("Validation perplexity = exp(loss)")
    axes[1].set_xlabel("step")
    if x:
        axes[1].set_yscale("log")
    x, y = series(main_metric)
    axes[2].plot(x, y, marker="o", color="tab:green")
    axes[2].set_title(f"Validation {main_metric.removeprefix('eval_')}")
    axes[2].set_xlabel("step")
    for a in axes:
        a.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
