"""How the report writes a number: 3 significant digits in every table, and the rounded value is
the one compared (a bold "best" mean must differ from the others as printed, not in digits the
table does not show)."""

from __future__ import annotations

import math

SIGNIFICANT = 3


def round_sig(value: float, digits: int = SIGNIFICANT) -> float:
    """`value` rounded to `digits` significant digits (non-finite values and 0 unchanged)."""
    if value is None or not math.isfinite(value) or value == 0:
        return value
    return float(f"{value:.{digits}g}")


def fmt(value: float | None, digits: int = SIGNIFICANT) -> str:
    """`value` with `digits` significant digits, short: '4.54', '0.000788', '1000', '5.64e-7';
    'n/a' where there is none."""
    if value is None or not math.isfinite(value):
        return "n/a"
    rounded = round_sig(float(value), digits)
    if rounded == 0:
        return "0"
    exponent = math.floor(math.log10(abs(rounded)))
    if -4 <= exponent < 6:
        text = f"{rounded:.{max(0, digits - 1 - exponent)}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, power = f"{rounded:.{digits - 1}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(power)}"
