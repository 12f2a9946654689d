"""The training-curves figure: training vs validation cross-entropy and perplexity on the same scale, the optimised
objective on its own panel, and the main caption metric, over steps."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_training_curves(
    log_history: list[dict],
    path: str | Path,
    main_metric: str = "eval_cider_d",
    train_loss_label: str = "training objective",
) -> Path:
    """Draws four panels from `TrainerState.log_history` and writes them to `path` (PNG):
    1. cross-entropy: the plain caption cross-entropy of the training batches (`caption_loss`) beside the validation
       loss (`eval_loss`), the same quantity on the same axis: a gap that opens while training falls is over-fitting;
    2. perplexity = exp(cross-entropy), training and validation;
    3. the objective the optimiser minimised (`loss`: smoothed, with auxiliary terms, or the SCST loss), on its own
       axis because it is not comparable with the validation loss, and the keyword term if any;
    4. the main caption metric on the validation split."""

    def series(key):
        points = [(e["step"], e[key]) for e in log_history if key in e and "step" in e]
        return [p[0] for p in points], [p[1] for p in points]

    def draw(ax, keys_labels, title, log_scale=False):
        drawn = False
        for key, label in keys_labels:
            x, y = series(key)
            if x:
                ax.plot(x, y, marker="o" if key.startswith("eval_") else None, label=label)
                drawn = True
        ax.set_title(title)
        ax.set_xlabel("step")
        if drawn:
            ax.legend()
            if log_scale:
                ax.set_yscale("log")

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    draw(
        axes[0, 0],
        (("caption_loss", "training"), ("eval_loss", "validation")),
        "Caption cross-entropy (same scale)",
    )
    draw(axes[0, 1], (("perplexity", "training"), ("eval_perplexity", "validation")), "Perplexity = exp(CE)", True)
    draw(axes[1, 0], (("loss", train_loss_label), ("keyword_loss", "keyword term (before its weight)")), "Objective")
    draw(
        axes[1, 1],
        ((main_metric, main_metric.removeprefix("eval_")),),
        f"Validation {main_metric.removeprefix('eval_')}",
    )
    for a in axes.flat:
        a.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
