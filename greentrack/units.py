"""Units shared by every module: one definition of the kWh, one way to print an energy."""

from __future__ import annotations

__all__ = ["J_PER_KWH", "format_energy"]

#: Joules in one kilowatt-hour.
J_PER_KWH = 3.6e6


def format_energy(energy_j: float | None) -> str:
    """``1234.5`` -> ``1.2 kJ``; ``7.2e6`` -> ``2.000 kWh``; None -> ``-``. Input in joules."""
    if energy_j is None:
        return "-"
    if energy_j >= J_PER_KWH:
        return f"{energy_j / J_PER_KWH:.3f} kWh"
    if energy_j >= 1e3:
        return f"{energy_j / 1e3:.1f} kJ"
    return f"{energy_j:.1f} J"
