"""`gdpp-bench report`: tables and figures made only from run directories."""

from __future__ import annotations

from pathlib import Path

from gdpp_bench.errors import UserError
from gdpp_bench.report.figures import evaluation_curves, samples_over_modes
from gdpp_bench.report.tables import collect_runs, summarize, summary_markdown
from gdpp_bench.rundir import write_atomic


def build_report(suite_dir: Path, out_dir: Path | None = None) -> dict[str, Path]:
    """Write runs.csv, summary.csv, summary.md and figures; return what was written."""
    runs = collect_runs(suite_dir)
    if runs.empty:
        raise UserError(f"no runs under {suite_dir}; run `gdpp-bench run --suite NAME` first")
    out_dir = out_dir or suite_dir / "report"
    summary = summarize(runs)
    written = {
        "runs.csv": out_dir / "runs.csv",
        "summary.csv": out_dir / "summary.csv",
        "summary.md": out_dir / "summary.md",
    }
    write_atomic(written["runs.csv"], lambda tmp: runs.to_csv(tmp, index=False))
    write_atomic(written["summary.csv"], lambda tmp: summary.to_csv(tmp, index=False))
    title = f"# {runs['suite'].iloc[0]}: mean ± std over seeds\n\n"
    markdown = title + summary_markdown(summary, runs)
    write_atomic(written["summary.md"], lambda tmp: tmp.write_text(markdown))
    for dataset in sorted(runs["dataset"].unique()):
        for prefix, draw in (("samples", samples_over_modes), ("evals", evaluation_curves)):
            figure = out_dir / f"{prefix}_{dataset}.png"
            if draw(runs, suite_dir, dataset, figure):
                written[figure.name] = figure
    return written


__all__ = ["build_report", "collect_runs", "summarize"]
