"""Report figures (seaborn/matplotlib), each written atomically as PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from gdpp_bench.data import DATASETS  # noqa: E402
from gdpp_bench.rundir import RunDir, write_atomic  # noqa: E402
from gdpp_bench.samples import draw_samples_2d  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> None:
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=150))
    plt.close(fig)


def samples_over_modes(runs: pd.DataFrame, suite_dir: Path, dataset: str, path: Path) -> bool:
    """Evaluation samples over the true mode centres: one column per variant, one row per seed."""
    done = runs[(runs["dataset"] == dataset) & (runs["status"] == "done")]
    if done.empty or len(DATASETS.get(dataset).shape) != 1:
        return False
    variants = sorted(done["variant"].unique())
    seeds = sorted(done["seed"].unique())
    centers = DATASETS.get(dataset).centers_tensor()
    fig, axes = plt.subplots(len(seeds), len(variants), squeeze=False,
                             figsize=(3 * len(variants), 3 * len(seeds)))
    for (row, seed), (col, variant) in (
        (r, c) for r in enumerate(seeds) for c in enumerate(variants)
    ):
        ax = axes[row][col]
        match = done[(done["variant"] == variant) & (done["seed"] == seed)]
        if match.empty:
            ax.set_axis_off()
            continue
        record = match.iloc[0]
        samples = torch.load(RunDir(suite_dir / record["run"]).eval_samples, weights_only=True)
        title = f"{variant}, seed {seed}\nmodes {record.get('modes', float('nan')):.0f}, " \
                f"HQ {record.get('hq_percent', float('nan')):.1f}%"
        draw_samples_2d(ax, samples, centers, title)
    suite = done["suite"].iloc[0]
    fig.suptitle(f"{suite} / {dataset}\ngenerated samples (x = mode centres), "
                 f"{int(done['steps'].iloc[0])} steps", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    return True


# the values drawn against training step, where a run's evaluations hold them
CURVE_METRICS = ("modes", "hq_percent", "kl_uniform", "classes", "fid", "kid", "precision", "recall",
                 "coverage", "ivom_mse")


def evaluation_curves(runs: pd.DataFrame, suite_dir: Path, dataset: str, path: Path) -> bool:
    """Metrics of the periodic evaluations (evals.csv) against training step, mean and 95% band
    over seeds per variant, every seed drawn faintly: shows how much the final number depends on
    the step at which it is read."""
    import seaborn as sns

    frames = []
    for record in runs[(runs["dataset"] == dataset) & (runs["status"] == "done")].itertuples():
        evals = RunDir(suite_dir / record.run).evals
        if evals.exists():
            frames.append(pd.read_csv(evals).assign(variant=record.variant, seed=record.seed))
    if not frames:
        return False
    curves = pd.concat(frames, ignore_index=True)
    metrics = [c for c in CURVE_METRICS if c in curves.columns]
    if not metrics:
        return False
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        sns.lineplot(data=curves, x="step", y=metric, hue="variant", errorbar=("ci", 95), ax=ax)
        sns.lineplot(data=curves, x="step", y=metric, hue="variant", units="seed", estimator=None,
                     alpha=0.25, linewidth=0.8, legend=False, ax=ax)
        ax.set_title(metric, fontsize=10)
    n_seeds = curves["seed"].nunique()
    fig.suptitle(f"{runs['suite'].iloc[0]} / {dataset}: periodic evaluation, mean and 95% CI over "
                 f"{n_seeds} seed(s)")
    fig.tight_layout()
    _save(fig, path)
    return True
