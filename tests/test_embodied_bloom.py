"""Reproduce a published figure: BLOOM's final training (Luccioni, Viguier & Ligozat 2022).

The paper's own inputs (arXiv 2211.02001, Table 1 and sections 4.1-4.2), fed through
greentrack's embodied table and its SCI functions:

* 1,082,990 GPU-hours on 384 NVIDIA A100 80GB GPUs in 48 nodes (8 per node, HPE Apollo 6500
  Gen10 Plus), so 1,082,990 x 48 / 384 node-hours;
* dynamic power: each GPU at its 400 W TDP, PUE not applied (the paper's 24.7 t figure),
  at 57 g CO2e/kWh (the French grid as the paper gives it);
* embodied: 2500 kg per server (the HPE ProLiant DL345 Gen10 Plus figure the paper uses for
  the Apollo 6500), 150 kg per GPU, a 6-year replacement rate and 85 % average use (IDRIS).

The published figures: dynamic 24.69 t (24.7 in the abstract), embodied 7.57 t (servers) +
3.64 t (GPUs) = 11.2 t, i.e. 0.056 kg per server-hour and 0.003 kg per GPU-hour.
"""

from __future__ import annotations

import pytest

from greentrack.carbon.embodied import DeviceUse, embodied_for_run, load_table, sci

GPU_HOURS = 1_082_990
GPUS, NODES = 384, 48
TDP_KW = 0.4
G_PER_KWH = 57.0
H = 3600.0


def bloom() -> tuple[object, object]:
    table = load_table()  # the shipped table: the rows must be the paper's
    gpu_row = table.lookup("gpu", "NVIDIA A100-SXM4-80GB")
    node_row = table.lookup("server", "HPE Apollo 6500 Gen10 Plus")
    assert gpu_row is not None and gpu_row.kg_co2e == 150.0 and "2211.02001" in gpu_row.source
    assert node_row is not None and node_row.kg_co2e == 2500.0 and "2211.02001" in node_row.source
    emb = embodied_for_run(
        [
            DeviceUse("server", "HPE Apollo 6500 Gen10 Plus", 1, GPU_HOURS * NODES / GPUS * H),
            DeviceUse("gpu", "NVIDIA A100-SXM4-80GB", 1, GPU_HOURS * H),
        ],
        table=table,
        lifetime_years=6,
        utilisation=0.85,
    )
    score = sci(
        GPU_HOURS * TDP_KW, emb.embodied_g, 1, "training run", intensity_g_per_kwh=G_PER_KWH
    )
    return emb, score


def within(value: float, published: float, last_digit: float) -> bool:
    """``value`` agrees with ``published`` to the paper's last digit: rounded (half a digit)
    or truncated (the paper's 7.57 t for the servers is 7.5753 t cut, not rounded)."""
    return abs(value - published) <= last_digit / 2 or 0 <= value - published < last_digit


def test_bloom_dynamic_and_embodied_match_the_paper_within_its_rounding() -> None:
    emb, score = bloom()
    t = 1e-6  # grams -> tonnes
    assert score.energy_kwh == 433_196.0  # the paper's 433,196 kWh
    assert within(score.operational_g * t, 24.69, 0.01)  # section 4.2: 24.69 t
    assert within(score.operational_g * t, 24.7, 0.1)  # abstract
    servers, gpus = (s.embodied_g * t for s in emb.shares)
    assert within(servers, 7.57, 0.01) and within(gpus, 3.64, 0.01)
    assert within(emb.embodied_g * t, 11.2, 0.1)
    # The paper's hourly rates: 0.056 kg per server-hour, 0.003 kg per GPU-hour.
    assert within(emb.shares[0].embodied_g / (GPU_HOURS * NODES / GPUS) / 1000, 0.056, 0.001)
    assert within(emb.shares[1].embodied_g / GPU_HOURS / 1000, 0.003, 0.001)
    assert score.total_g == score.operational_g + emb.embodied_g
    assert not emb.missing


def test_bloom_embodied_moves_with_the_lifetime_as_sci_says() -> None:
    """M is proportional to TiR / EL: the default 4-year life gives 6/4 of the paper's figure."""
    emb6, _ = bloom()
    emb4 = embodied_for_run(
        [DeviceUse("gpu", "NVIDIA A100-SXM4-80GB", 1, GPU_HOURS * H)], utilisation=0.85
    )
    assert emb4.embodied_g / emb6.shares[1].embodied_g == pytest.approx(1.5, rel=1e-12)
