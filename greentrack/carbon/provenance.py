"""Where an intensity figure came from (numpy-free, so that the static path never loads numpy)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Provenance"]


@dataclass(frozen=True)
class Provenance:
    """Where an intensity figure came from.

    Attributes:
        source: e.g. ``codecarbon-static``, ``csv``, ``electricitymaps``, ``watttime``,
            ``uk-carbon-intensity``.
        zone: the zone id the figure is for (``ES``, ``US-CAL-CISO``, ``gcp:europe-west1``).
        kind: ``average`` or ``marginal``.
        period: the period the data covers, e.g. ``2022`` or
            ``2022-03-01T00:00Z/2022-03-02T00:00Z``.
        detail: free text (file name, provider endpoint, fallback reason).
    """

    source: str
    zone: str
    kind: str = "average"
    period: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.source,
            "zone": self.zone,
            "kind": self.kind,
            "period": self.period,
            "detail": self.detail,
        }

    def label(self) -> str:
        """Short human label: ``csv ES average 2022``."""
        return " ".join(p for p in (self.source, self.zone, self.kind, self.period) if p)
