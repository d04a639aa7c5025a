"""Report figures: seaborn-styled matplotlib, each written atomically as PNG (150 dpi) and PDF.

Every figure function draws finished runs only (status "done"; the tables list the others) and
returns the paths it wrote, PNG first: [] where the figure does not apply (no finished runs, or
no such data). Titles name the suite, the dataset, what is drawn, the number of seeds and, for
final metrics, the evaluation protocol; intervals are 95% t intervals (`stats.mean_ci`).

The figures of one suite's report are registered in FIGURES: `per="metric"` ones are drawn for
every compared metric of a dataset (stem PREFIX_DATASET_METRIC), `per="dataset"` ones once per
dataset (stem PREFIX_DATASET); `report` draws every registered figure that applies.
"""

from __future__ import annotations

from gdpp_bench.registry import Registry
from gdpp_bench.report.figures.base import ci_frame, metric_label
from gdpp_bench.report.figures.curves import evaluation_curves, training_curves
from gdpp_bench.report.figures.metrics import metric_points, metric_vs_cpu, metric_vs_weight
from gdpp_bench.report.figures.modes import mode_histograms
from gdpp_bench.report.figures.overview import gdpp_effect_heatmap, relative_change
from gdpp_bench.report.figures.samples import sample_grids, samples_over_modes
from gdpp_bench.report.tables import variant_order

FIGURES: Registry = Registry("figure")
FIGURES.register("points", per="metric")(metric_points)
FIGURES.register("weight", per="metric")(metric_vs_weight)
FIGURES.register("cost", per="metric")(metric_vs_cpu)
FIGURES.register("training", per="dataset")(training_curves)
FIGURES.register("grids", per="dataset")(sample_grids)
FIGURES.register("samples", per="dataset")(samples_over_modes)
FIGURES.register("modes", per="dataset")(mode_histograms)
FIGURES.register("evals", per="dataset", last_k=True)(evaluation_curves)

__all__ = [
    "FIGURES",
    "ci_frame",
    "evaluation_curves",
    "gdpp_effect_heatmap",
    "metric_label",
    "metric_points",
    "metric_vs_cpu",
    "metric_vs_weight",
    "mode_histograms",
    "relative_change",
    "sample_grids",
    "samples_over_modes",
    "training_curves",
    "variant_order",
]
