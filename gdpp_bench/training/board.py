"""TensorBoard events of a run (eval.tensorboard): one TensorBoard run per run folder, so that
`tensorboard --logdir RESULTS/SUITE` compares a suite's runs while they train."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from gdpp_bench.errors import UserError
from gdpp_bench.rundir import RunDir


class Board:
    """The run's SummaryWriter: log.csv's values under train/, periodic metrics under eval/, the
    sample pictures under samples. A resumed run drops the events of the steps it trains again."""

    def __init__(self, run_dir: RunDir, start: int) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError(
                "eval.tensorboard (--tensorboard) needs the tensorboard package: "
                "pip install 'gdpp-bench[tensorboard]'"
            ) from None
        # events after the checkpoint we resume from are trained again: purge them (steps > start)
        self._writer: Any = SummaryWriter(str(run_dir.tensorboard), purge_step=start + 1 if start else None)

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        for name, value in values.items():
            if isinstance(value, int | float) and math.isfinite(value):
                self._writer.add_scalar(f"{prefix}/{name}", value, step)

    def picture(self, tag: str, path: Path, step: int) -> None:
        from PIL import Image

        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        self._writer.add_image(tag, pixels, step, dataformats="HWC")

    def close(self) -> None:
        self._writer.close()
