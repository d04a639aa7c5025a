"""`gdpp-bench report`: tables, statistics, figures and one HTML page, made only from run directories.

The builders (gdpp_bench.report.build) are loaded on first use: modules that need only the
statistics or the run table (the power check, the tuner) do not pay for matplotlib and seaborn."""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_BASELINE", "build_overview", "build_report", "collect_runs", "suite_dirs", "summarize"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from gdpp_bench.report import build

        return getattr(build, name)
    raise AttributeError(f"module 'gdpp_bench.report' has no attribute {name!r}")
