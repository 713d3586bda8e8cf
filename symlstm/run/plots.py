"""A run's loss curves: loss.png from the metrics.csv (and valid_forms.csv) the training loop writes.

The one module of the package that draws; matplotlib is imported only when a plot is made.
"""
import collections
import csv
from pathlib import Path

from symlstm.errors import UserError


class PlotError(UserError, FileNotFoundError):
    """A run directory without the metrics to plot."""


def plot_metrics(run_dir: Path) -> Path:
    """Write loss.png (train and validation loss against step) from metrics.csv."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise PlotError(f"{path}: no metrics.csv in this run directory")
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    fig, ax = plt.subplots(figsize=(7, 4))
    tr = [(int(r["step"]), float(r["train_loss"])) for r in rows if r["train_loss"]]
    va = [(int(r["step"]), float(r["valid_loss"])) for r in rows if r["valid_loss"]]
    if tr:
        ax.plot(*zip(*tr), label="train (moving average)")
    if va:
        ax.plot(*zip(*va), "o-", label="validation")
    forms = Path(run_dir) / "valid_forms.csv"
    if forms.is_file():  # a run with form tokens: one dashed validation curve per form
        per_form = collections.defaultdict(list)
        for r in csv.DictReader(forms.open(encoding="utf-8")):
            per_form[r["form"]].append((int(r["step"]), float(r["valid_loss"])))
        for name, points in per_form.items():
            ax.plot(*zip(*points), "--", lw=1, label=f"validation, {name}")
    ax.set_xlabel("step")
    ax.set_ylabel("NLL per token (nats)")
    ax.set_title(Path(run_dir).name)
    ax.grid(alpha=0.3)
    ax.legend()
    out = Path(run_dir) / "loss.png"
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
