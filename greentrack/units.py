"""Units shared by every module: one definition of the kWh, one way to print a number.

Every human output (CLI tables, ``RunSummary``, reports) prints measured and derived figures
through :func:`format_sig` and its unit wrappers, so a small value keeps its significant
digits (``0.0041 g``, never ``0.00 g``) and a large one does not pretend to a precision it lacks.
"""

from __future__ import annotations

import math

__all__ = ["J_PER_KWH", "format_co2e", "format_energy", "format_power", "format_sig"]

#: Joules in one kilowatt-hour.
J_PER_KWH = 3.6e6


def format_sig(value: float | None, digits: int = 3, *, na: str = "-") -> str:
    """``value`` with ``digits`` significant digits, for people to read.

    ``0.0041234`` -> ``0.00412``; ``23.84`` -> ``23.8``; ``1234.5`` -> ``1,234`` (digits beyond
    the integer part are not invented, nor is an integer rounded); ``0`` -> ``0``; values below
    1e-4 or from 1e7 on use e-notation (``4.12e-05``). None, NaN and ±inf -> ``na``.
    Dimensionless: the caller appends the unit.
    """
    if value is None:
        return na
    x = float(value)
    if not math.isfinite(x):
        return na
    if x == 0:
        return "0"
    if digits < 1:
        raise ValueError(f"format_sig: digits must be >= 1 (got {digits})")
    ax = abs(x)
    if ax >= 1e7 or ax < 1e-4:
        return f"{x:.{digits - 1}e}"
    decimals = max(0, digits - 1 - math.floor(math.log10(ax)))
    rounded = round(x, decimals)
    if rounded != 0 and math.floor(math.log10(abs(rounded))) > math.floor(math.log10(ax)):
        decimals = max(0, decimals - 1)  # 9.996 -> 10.0, not 10.00
    if decimals == 0:
        return f"{x:,.0f}"
    return f"{x:.{decimals}f}"


def format_energy(energy_j: float | None, digits: int = 3) -> str:
    """An energy in J, kJ or kWh with ``digits`` significant digits. Input in joules.

    ``0.0412`` -> ``0.0412 J``; ``1234.5`` -> ``1.23 kJ``; ``7.2e6`` -> ``2.00 kWh``
    (kWh from 0.1 kWh on); None -> ``-``.
    """
    if energy_j is None or not math.isfinite(float(energy_j)):
        return "-"
    ax = abs(energy_j)
    if ax >= 0.1 * J_PER_KWH:
        return f"{format_sig(energy_j / J_PER_KWH, digits)} kWh"
    if ax >= 1e3:
        return f"{format_sig(energy_j / 1e3, digits)} kJ"
    return f"{format_sig(energy_j, digits)} J"


def format_co2e(co2e_g: float | None, digits: int = 3) -> str:
    """A mass of CO2e in grams with ``digits`` significant digits: ``0.0041`` -> ``0.0041 g``
    (trailing digits as :func:`format_sig` gives them: ``0.00410 g``); None -> ``-``."""
    text = format_sig(co2e_g, digits)
    return text if text == "-" else f"{text} g"


def format_power(power_w: float | None, digits: int = 3) -> str:
    """A power in watts: ``12.345`` -> ``12.3 W``; None -> ``-``."""
    text = format_sig(power_w, digits)
    return text if text == "-" else f"{text} W"
