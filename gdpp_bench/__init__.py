"""gdpp-bench: does a diversity loss such as GDPP make a GAN cover more modes, and at what cost?

From Python: `run_suite`, `tune`, `evaluate`, `load_runs` and `load_metrics` (gdpp_bench.api and
gdpp_bench.tuning); they are
loaded on first use, so that importing the package (as every worker process does) stays light."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "evaluate", "load_metrics", "load_runs", "run_suite", "tune"]
_API = ("evaluate", "load_metrics", "load_runs", "run_suite")


def __getattr__(name: str) -> Any:
    if name in _API:
        import gdpp_bench.api

        return getattr(gdpp_bench.api, name)
    if name == "tune":
        import gdpp_bench.tuning

        return gdpp_bench.tuning.tune
    raise AttributeError(f"module 'gdpp_bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API, "tune"])
