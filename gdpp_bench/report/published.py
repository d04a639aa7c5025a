"""Published numbers shown beside ours: each a reference row of a summary table and a reference
line of a figure, labelled with its source and protocol, never a run of our statistics (no mean,
interval, test or "best" takes it in).

Only values measured under a protocol comparable to one of our metrics are listed (the sources and
their protocols: ../shared/PROTOCOLS.md). Not listed on purpose: the paper's CIFAR-10 IvOM (its
official code never optimises z, so it measures something else), and reference FIDs of other
libraries (their sample counts and feature extractors differ from each suite's)."""

from __future__ import annotations

from dataclasses import dataclass

GDPP_PAPER = "GDPP paper (Elfeki et al., ICML 2019)"
SYNTHETIC_PROTOCOL = "2,500 samples, high quality within 3 std of a mean, after 25,000 steps"
# the official ring repeats angle 0 (PROTOCOLS.md); its grid is ours
RING_PROTOCOL = f"{SYNTHETIC_PROTOCOL} (its ring: 7 distinct means)"
STACKED_PROTOCOL = "26,000 samples, an MNIST classifier per channel, after 15,000 steps"


@dataclass(frozen=True)
class Published:
    """One published value: `method` (as the source names it) scored `value` on `metric` of
    `dataset` (our names of both) in `source`, under `protocol`."""

    source: str
    protocol: str
    dataset: str
    metric: str
    method: str
    value: float

    @property
    def label(self) -> str:
        """A table row's name: 'GDPP-GAN, GDPP paper (Elfeki et al., ICML 2019)'."""
        return f"{self.method}, {self.source}"


def _rows(dataset: str, protocol: str, values: dict[str, dict[str, float]]) -> list[Published]:
    return [
        Published(GDPP_PAPER, protocol, dataset, metric, method, value)
        for method, by_metric in values.items()
        for metric, value in by_metric.items()
    ]


PUBLISHED: tuple[Published, ...] = (
    *_rows(
        "ring8",
        RING_PROTOCOL,
        {"GAN": {"modes": 1, "hq_percent": 99.3}, "GDPP-GAN": {"modes": 8, "hq_percent": 71.7}},
    ),
    *_rows(
        "grid25",
        SYNTHETIC_PROTOCOL,
        {"GAN": {"modes": 3.3, "hq_percent": 0.5}, "GDPP-GAN": {"modes": 24.8, "hq_percent": 68.5}},
    ),
    *_rows(
        "stacked-mnist",
        STACKED_PROTOCOL,
        {
            "DCGAN": {"modes": 427, "kl_uniform": 3.163},
            "WGAN-GP": {"modes": 995, "kl_uniform": 0.148},
            "GDPP-GAN": {"modes": 1000, "kl_uniform": 0.135},
        },
    ),
)


def published(dataset: str, metric: str | None = None) -> list[Published]:
    """The published values for `dataset` (and `metric`, if given), in the order listed."""
    return [p for p in PUBLISHED if p.dataset == dataset and (metric is None or p.metric == metric)]
