"""Print the README answer table's cells for a tuned study, from its report's decisions.csv.

    python benchmarks/studies/answer_cells.py results/ring8-tuned/report [--dataset ring8]

One line per variant compared with `bce` on the primary metrics (modes, kl_uniform), in the
table's words: the verdict (bold when a direction was detected), Δ with its 95 % bootstrap
interval, the Holm p, and n (variant vs `bce`). The table's cells are copied from this output, so
that no number in it is typed by hand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from gdpp_bench.report.claims import verdict_kind
from gdpp_bench.report.numbers import fmt

METRIC_NAMES = {"modes": "modes", "kl_uniform": "KL"}


def format_p(p: float) -> str:
    """Holm p as the table writes it: the report's number format, two significant digits (one
    below 0.001: '7e-5')."""
    return fmt(p, 2 if p >= 0.001 else 1)


def format_verdict(verdict: str) -> str:
    """The verdict's kind (the cell ends with n), 'better' and 'worse' in bold."""
    kind = verdict_kind(verdict)
    return f"**{kind}**" if kind in ("better", "worse") else kind


def answer_cell(rows: pd.DataFrame) -> str:
    """The cell for one variant: its primary metrics' rows of decisions.csv, in the table's order."""
    parts = []
    for metric, name in METRIC_NAMES.items():
        row = rows[rows.metric == metric].iloc[0]
        parts.append(
            f"{name}: {format_verdict(row.verdict)}, Δ {row.difference:+.2f} "
            f"[{row.difference_low:.2f}, {row.difference_high:.2f}], p {format_p(row.mannwhitney_p_holm)}"
        )
    sizes = rows[["n", "n_reference"]].drop_duplicates()
    if len(sizes) != 1:
        raise SystemExit(f"error: the primary metrics of {rows.variant.iloc[0]} have different n: {sizes}")
    n, n_reference = sizes.iloc[0]
    return "; ".join(parts) + f"; n {n} vs {n_reference}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="a report folder with decisions.csv")
    parser.add_argument("--dataset", help="the dataset (default: the only one in the report)")
    args = parser.parse_args()
    decisions_path = args.report / "decisions.csv"
    if not decisions_path.is_file():
        sys.exit(f"error: no {decisions_path}: run `gdpp-bench report --out {args.report}` first")
    decisions = pd.read_csv(decisions_path)
    wanted = decisions[(decisions.reference == "bce") & decisions.metric.isin(list(METRIC_NAMES))]
    if "role" in wanted:
        wanted = wanted[wanted.role == "confirm"]
    datasets = sorted(wanted.dataset.unique())
    dataset = args.dataset or (datasets[0] if len(datasets) == 1 else None)
    if dataset not in datasets:
        sys.exit(f"error: choose --dataset from {datasets}")
    for variant, rows in wanted[wanted.dataset == dataset].groupby("variant", sort=False):
        print(f"{variant}: {answer_cell(rows)}")


if __name__ == "__main__":
    main()
