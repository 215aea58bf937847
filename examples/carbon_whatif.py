"""Where and when: the same training run's CO2e against hourly grid data, and what-ifs.

    python examples/carbon_whatif.py [--csv FILE ...]

Loads hourly carbon intensity for Spain from Electricity Maps data-portal exports (three years
from ``../shared/data/grid-intensity`` when present, else the four-day slice shipped with the
tests; data © Electricity Maps, ODbL), accounts a synthetic 6-hour, 300 W training run that
starts at the evening peak, and asks what it would have emitted starting at midday, in France,
and by the static annual average. Prints one line per figure with its provenance.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from greentrack.carbon.accounting import account_samples, static_co2e_g
from greentrack.carbon.csvsource import load_csv
from greentrack.carbon.registry import get_source
from greentrack.carbon.static import static_intensity
from greentrack.carbon.whatif import whatif

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data" / "grid-intensity" / "electricitymaps"
SLICE = HERE.parent / "tests" / "data" / "em_ES_2022-03-01_4d.csv"


def default_csvs() -> list[Path]:
    years = [SHARED / f"ES_{y}_hourly.csv" for y in (2021, 2022, 2023)]
    return years if all(p.is_file() for p in years) else [SLICE]


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def training_run(start_s: float, hours: float = 6.0, power_w: float = 300.0) -> dict:
    """Cumulative energy samples every 10 s of a constant-power job (what a meter records)."""
    t = start_s + np.arange(10.0, hours * 3600 + 1, 10.0)  # (n,)
    return {"t_s": t, "energy_j": power_w * (t - start_s), "device": np.full(t.size, "gpu:0")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", nargs="*", type=Path, default=None)
    args = parser.parse_args()
    files = args.csv or default_csvs()

    series = load_csv(files)
    print(f"loaded {len(series)} hourly values: {series.provenance.label()}")

    start = epoch("2022-03-01T18:00:00")
    run = training_run(start)
    acct = account_samples(run["t_s"], run["energy_j"], series, device=run["device"],
                           start_s=start)  # fmt: skip
    print(f"run at 18:00 UTC:   {acct.co2e_g:8.1f} g CO2e  ({acct.energy_kwh:.2f} kWh, "
          f"mean {acct.mean_g_per_kwh:.1f} g/kWh)")  # fmt: skip

    csv_source = get_source("csv", csv=files)
    noon = whatif(run, start_s=epoch("2022-03-02T10:00:00"), source=csv_source,
                  original_co2e_g=acct.co2e_g, run_region="ES", original_start_s=start)  # fmt: skip
    change = 100 * (noon.co2e_g / acct.co2e_g - 1)
    print(f"what-if 10:00 UTC:  {noon.co2e_g:8.1f} g CO2e  ({change:+.0f}%)  "
          f"[{noon.provenance.label()}]")  # fmt: skip

    static = get_source("static")
    france = whatif(run, region="FR", source=static, original_co2e_g=acct.co2e_g,
                    original_start_s=start)  # fmt: skip
    print(f"what-if in France:  {france.co2e_g:8.1f} g CO2e  [{france.provenance.label()}]")

    g_es, prov = static_intensity("ES")
    print(f"static annual (ES): {static_co2e_g(acct.energy_kwh, g_es):8.1f} g CO2e  "
          f"[{prov.label()}]")  # fmt: skip


if __name__ == "__main__":
    main()
