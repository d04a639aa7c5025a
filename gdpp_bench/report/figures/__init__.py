"""Report figures: seaborn-styled matplotlib, each written atomically as PNG (150 dpi) and PDF.

Every figure function draws finished runs only (status "done"; the tables list the others) and
returns the paths it wrote, PNG first: [] where the figure does not apply (no finished runs, or
no such data). Titles name the suite, the dataset, what is drawn, the number of seeds and, for
final metrics, the evaluation protocol; intervals are 95% t intervals (`stats.mean_ci`).

The figures of one suite's report are registered in FIGURES: `per="metric"` ones are drawn for
every compared metric of a dataset (stem PREFIX_DATASET_METRIC), `per="dataset"` ones once per
dataset (stem PREFIX_DATASET; a figure of more panels than one row holds is drawn as several,
PREFIX_DATASET_1-of-N ...); `report` draws every registered figure that applies. A `caption` is
a template of {dataset} and {metric}, or a dict of them by the dataset's kind ("2d", "image"). A figure of
runs compared by the decision rule is drawn from one recipe's runs at a time: the ordinary runs
into figures/, a tuned suite's confirmation runs into figures/tuned/. A figure registered with
`tuning=True` is drawn once per dataset from all its runs (it reads the trial runs).
"""

from __future__ import annotations

from gdpp_bench.registry import Registry
from gdpp_bench.report.figures.base import ci_frame, metric_label
from gdpp_bench.report.figures.curves import evaluation_curves, training_curves
from gdpp_bench.report.figures.metrics import metric_points, metric_vs_cpu, metric_vs_weight
from gdpp_bench.report.figures.modes import mode_histograms
from gdpp_bench.report.figures.overview import gdpp_effect_heatmap, relative_change
from gdpp_bench.report.figures.samples import sample_grids, samples_over_modes
from gdpp_bench.report.figures.tuning import best_against_budget, objective_by_trial
from gdpp_bench.report.tables import variant_order

FIGURES: Registry = Registry("figure")
FIGURES.register(
    "points",
    per="metric",
    caption="{metric} on {dataset}: each seed as a dot, each variant's mean with its 95% t interval, "
    "the baseline's mean dashed",
)(metric_points)
FIGURES.register(
    "weight",
    per="metric",
    caption="{metric} on {dataset} against the weight of each diversity term (log axis; mean, 95% band, "
    "seeds as dots; variants without a term dashed)",
)(metric_vs_weight)
FIGURES.register(
    "cost",
    per="metric",
    caption="{metric} on {dataset} against each run's training CPU seconds: what a gain costs in compute",
)(metric_vs_cpu)
FIGURES.register(
    "training",
    per="dataset",
    caption="Training losses and diversity terms on {dataset} against the step (mean over seeds, 95% band)",
)(training_curves)
FIGURES.register(
    "grids",
    per="dataset",
    caption="Generated images on {dataset}: each variant's final fixed-noise grid, one seed, side by side",
)(sample_grids)
FIGURES.register(
    "samples",
    per="dataset",
    caption="Generated points over the {dataset} mode centres: one column per variant, one row per seed, "
    "each panel with its modes and high-quality share",
)(samples_over_modes)
FIGURES.register(
    "modes",
    per="dataset",
    caption={
        "2d": "How evenly the modes of {dataset} are covered: the share of high-quality samples per mode",
        "image": "How evenly the modes of {dataset} are covered: the generated samples per digit triple, "
        "ranked",
    },
)(mode_histograms)
FIGURES.register(
    "evals",
    per="dataset",
    last_k=True,
    caption="Periodic evaluations on {dataset} against the step: mean over seeds, 95% band, each "
    "seed faintly; the shaded window is what a run's headline value averages",
)(evaluation_curves)
FIGURES.register(
    "tuning",
    per="dataset",
    tuning=True,
    caption="Tuning on {dataset}: the objective of every trial per variant (its aggregate over the "
    "tuning seeds), constraint violations hollow, failed trials as crosses, the confirmed trial a star",
)(objective_by_trial)
FIGURES.register(
    "budget",
    per="dataset",
    tuning=True,
    caption="Tuning on {dataset}: the expected best feasible objective among k trials drawn from each "
    "variant's budget, against k and against their CPU seconds (95% bootstrap band; Lucic et al. 2018)",
)(best_against_budget)

__all__ = [
    "FIGURES",
    "best_against_budget",
    "ci_frame",
    "evaluation_curves",
    "gdpp_effect_heatmap",
    "metric_label",
    "metric_points",
    "metric_vs_cpu",
    "metric_vs_weight",
    "mode_histograms",
    "objective_by_trial",
    "relative_change",
    "sample_grids",
    "samples_over_modes",
    "training_curves",
    "variant_order",
]
