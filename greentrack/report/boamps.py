"""The report as BoAmps JSON (``greentrack report RUN --format boamps``).

BoAmps is Boavizta's data model for reporting the energy use of AI/ML tasks (JSON Schemas
draft-04, CC BY 4.0, "BoAmps, Boavizta"; a copy of the schemas ships in ``greentrack/data/boamps``
with their licence, from Boavizta/BoAmps commit 3bfefec). How greentrack fills it:

* ``header``: ``reportId`` (a UUID derived from the run ids, so the same runs give the same id),
  ``reportDatetime`` (now, UTC), ``reportStatus`` ``final`` when every run finished, else
  ``draft``; no publisher or licence (they are yours to state).
* ``task``: ``taskStage`` from the tag ``stage`` (or ``task_stage``), else from the phase names
  (``train``/``fit``/``epoch`` -> training, ``finetun`` -> finetuning, ``infer``/``predict``/
  ``generate``/``serve`` -> inference, several joined with ``+``), else ``other``;
  ``taskFamily`` from the tag ``task_family`` (else ``other``); ``algorithms`` one per run
  (run name, framework PyTorch with its version when the run recorded it, parameter count);
  ``dataset`` from the tags ``data_type`` / ``data_quantity`` (else one ``input`` of type
  ``other``); ``measuredAccuracy`` from a metric ``accuracy``/``val_acc``/``acc`` in [0, 1];
  ``taskDescription`` says which of these greentrack did not know.
* ``measures``: one per device of each run: ``measurementMethod`` ``greentrack``, its
  ``version``, ``cpuTrackingMode`` (CPU, DRAM, RAM) or ``gpuTrackingMode`` (GPU) naming the
  device, its method and the device's assumption note (``gpu:0: energy counter (...)``,
  ``cpu:estimate: estimated (...); TDP 280 W ...``), ``powerConsumption`` the device's energy
  in kWh (**PUE not applied**; BoAmps calls energy "power consumption"), ``measurementDuration``
  (s) and
  ``measurementDateTime`` (start, UTC).
* ``system`` (OS), ``software`` (Python and its version), ``infrastructure``
  (``publicCloud`` with the provider for a cloud region such as ``gcp:europe-west1``, else
  ``other``; the CPU model with its package count, each GPU model with its count, RAM when it
  was measured), ``environment`` (``country`` from the region's grid zone, ``location`` the zone,
  ``powerSourceCarbonIntensity`` the time-weighted g/kWh the CO2e used, and ``pue``: BoAmps has
  no PUE field; greentrack adds this one, which the schemas allow).

The document is validated against the shipped schemas when ``jsonschema`` is installed
(``pip install 'greentrack[boamps]'``), offline: the five schemas are registered by their ``id``
so nothing is fetched.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from greentrack.errors import GreentrackError
from greentrack.units import J_PER_KWH

__all__ = ["SCHEMA_IDS", "boamps_document", "render", "schemas", "validate"]

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "data" / "boamps"
SCHEMA_IDS = {
    name: f"https://raw.githubusercontent.com/Boavizta/BoAmps/main/model/{name}_schema.json"
    for name in ("report", "measure", "hardware", "algorithm", "dataset")
}
SPEC_URI = "https://github.com/Boavizta/BoAmps/tree/3bfefec8446ee196d1723c0e35859eb7762da3c9/model"
FORMAT_VERSION = "0.1"  # as in the BoAmps example report of the same commit

_STAGE_WORDS = (
    ("finetun", "finetuning"),
    ("train", "training"),
    ("fit", "training"),
    ("epoch", "training"),
    ("infer", "inference"),
    ("predict", "inference"),
    ("generat", "inference"),
    ("serve", "inference"),
)
_ACCURACY_KEYS = ("accuracy", "val_accuracy", "val_acc", "test_accuracy", "test_acc", "acc")
_CLOUD = {"gcp": "google", "aws": "aws", "azure": "azure"}
_TRACKING = {
    "counter": "energy counter (NVML / RAPL / amdsmi cumulative energy)",
    "sampled": "sampled power, integrated over time",
    "estimated": "estimated",
}


@functools.cache
def schemas() -> dict[str, dict[str, Any]]:
    """The five BoAmps schemas shipped with greentrack, by name (``report``, ``measure``...)."""
    return {
        name: json.loads((SCHEMA_DIR / f"{name}_schema.json").read_text(encoding="utf-8"))
        for name in SCHEMA_IDS
    }


def validate(document: Mapping[str, Any]) -> None:
    """Validate ``document`` against the BoAmps report schema, offline.

    Raises:
        ImportError: jsonschema is not installed.
        jsonschema.ValidationError: the document does not conform.
    """
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    registry: Registry = Registry().with_resources(
        (SCHEMA_IDS[name], Resource.from_contents(s, default_specification=DRAFT4))
        for name, s in schemas().items()
    )
    jsonschema.Draft4Validator(schemas()["report"], registry=registry).validate(document)


def _datetime(iso: str | None) -> str | None:
    """ISO 8601 (the report's ``...Z``) -> ``YYYY-MM-DD HH:MM:SS`` (UTC), BoAmps' format."""
    if not iso:
        return None
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S")


def _stage(runs: Sequence[Mapping[str, Any]]) -> tuple[str, bool]:
    """(taskStage, known) from the tags, else the phase names."""
    for r in runs:
        tags = r.get("tags") or {}
        for key in ("stage", "task_stage"):
            if tags.get(key):
                return str(tags[key]), True
    found: list[str] = []
    for r in runs:
        for p in r.get("phase_totals") or []:
            name = str(p.get("name", "")).lower()
            for word, stage in _STAGE_WORDS:
                if word in name:
                    if stage not in found:
                        found.append(stage)
                    break
    return ("+".join(found), True) if found else ("other", False)


def _accuracy(run: Mapping[str, Any]) -> float | None:
    metrics = run.get("metrics") or {}
    for key in _ACCURACY_KEYS:
        v = metrics.get(key)
        if isinstance(v, int | float) and 0.0 <= v <= 1.0:
            return float(v)
    return None


def _manufacturer(model: str) -> str | None:
    low = model.lower()
    for word, name in (("nvidia", "NVIDIA"), ("intel", "Intel"), ("amd", "AMD"),
                       ("tesla", "NVIDIA"), ("apple", "Apple")):  # fmt: skip
        if word in low:
            return name
    return None


def _tracking(component: Mapping[str, Any]) -> tuple[str, str]:
    """(field, text): which tracking-mode field describes this device, and how."""
    kind, method = str(component.get("component")), str(component.get("method"))
    how = _TRACKING.get(method, method)
    if component.get("note"):
        how += f"; {component['note']}"  # every assumption behind the figure
    elif method == "estimated":
        how += " (no assumption note stored with this run)"
    field = "gpuTrackingMode" if kind == "gpu" else "cpuTrackingMode"
    return field, f"{component.get('device')}: {how}"


def _measures(run: Mapping[str, Any], version: str) -> list[dict[str, Any]]:
    out = []
    start = _datetime(run.get("started_at"))
    for c in run.get("components") or []:
        field, how = _tracking(c)
        m: dict[str, Any] = {
            "measurementMethod": "greentrack",
            "version": version,
            field: how,
            "powerConsumption": float(c.get("energy_j") or 0.0) / J_PER_KWH,
        }
        if run.get("duration_s") is not None:
            m["measurementDuration"] = float(run["duration_s"])
        if start:
            m["measurementDateTime"] = start
        out.append(m)
    return out


def _components(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cpus: dict[str, int] = {}
    gpus: dict[str, int] = {}
    ram = False
    for r in runs:
        hw = (r.get("pricetag") or {}).get("hardware") or {}
        if hw.get("cpu_model"):
            model = str(hw["cpu_model"])
            cpus[model] = max(cpus.get(model, 0), int(hw.get("cpu_packages") or 1))
        for g in hw.get("gpus") or []:
            gpus[str(g["model"])] = max(gpus.get(str(g["model"]), 0), int(g["count"]))
        ram = ram or any(c.get("component") in ("ram", "dram") for c in r.get("components") or [])
    for model, n in cpus.items():
        item = {"componentName": model, "componentType": "cpu", "nbComponent": max(n, 1)}
        if _manufacturer(model):
            item["manufacturer"] = _manufacturer(model)
        out.append(item)
    for model, n in gpus.items():
        item = {"componentName": f"{n} x {model}", "componentType": "gpu", "nbComponent": n}
        if _manufacturer(model):
            item["manufacturer"] = _manufacturer(model)
        out.append(item)
    if ram or not out:
        out.append({"componentType": "ram", "nbComponent": 1})
    return out


def _environment(run: Mapping[str, Any]) -> dict[str, Any]:
    region = run.get("region")
    env: dict[str, Any] = {"country": "unknown"}
    if region:
        env["location"] = str(region)
        try:
            from greentrack.carbon._data import countries
            from greentrack.carbon.regions import zone_info

            iso2 = zone_info(str(region)).location.split("-")[0]
            env["country"] = countries()[2].get(iso2, iso2)
        except GreentrackError:
            pass
    intensity = ((run.get("pricetag") or {}).get("intensity") or {}).get("time_weighted_g_per_kwh")
    if isinstance(intensity, int | float):
        env["powerSourceCarbonIntensity"] = float(intensity)
    if run.get("pue") is not None:
        env["pue"] = float(run["pue"])
    return env


def _tool_version() -> str:
    """greentrack's installed version (from its distribution metadata: the facade module is a
    layer above reports)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("greentrack")
    except PackageNotFoundError:
        return "unknown"


def boamps_document(report: Mapping[str, Any]) -> dict[str, Any]:
    """The BoAmps report (a JSON-ready dict) of a ``greentrack.report/1`` object."""
    __version__ = _tool_version()

    runs: list[Mapping[str, Any]] = list(report.get("runs") or [])
    if not runs:
        raise GreentrackError("no runs to report on")
    first = runs[0]
    meta = first.get("meta") or {}
    stage, stage_known = _stage(runs)
    tags = first.get("tags") or {}
    unknown = [] if stage_known else ["taskStage (tag stage)"]
    family = tags.get("task_family")
    if not family:
        unknown.append("taskFamily (tag task_family)")
    dataset: dict[str, Any] = {"dataUsage": "input", "dataType": "other"}
    if tags.get("data_type"):
        dataset["dataType"] = str(tags["data_type"])
    else:
        unknown.append("dataset type (tag data_type)")
    try:
        if tags.get("data_quantity"):
            dataset["dataQuantity"] = float(tags["data_quantity"])
    except ValueError:
        pass
    algorithms = []
    for r in runs:
        a: dict[str, Any] = {"algorithmName": str(r.get("name") or "run")}
        m = r.get("meta") or {}
        if m.get("torch"):
            a["framework"], a["frameworkVersion"] = "pytorch", str(m["torch"])
        total = (r.get("pricetag") or {}).get("params_total")
        if isinstance(total, int | float):
            a["parametersNumber"] = float(total)
        algorithms.append(a)
    task: dict[str, Any] = {
        "taskStage": stage,
        "taskFamily": str(family or "other"),
        "algorithms": algorithms,
        "dataset": [dataset],
    }
    acc = _accuracy(first)
    if acc is not None:
        task["measuredAccuracy"] = acc
    ids = ", ".join(str(r["id"]) for r in runs)
    description = f"greentrack run(s) {ids}, project {first.get('project')}"
    if unknown:
        description += "; not recorded by greentrack, set as 'other': " + ", ".join(unknown)
    task["taskDescription"] = description
    region = str(first.get("region") or "")
    provider = region.split(":", 1)[0] if ":" in region else None
    infra: dict[str, Any] = {"infraType": "publicCloud" if provider in _CLOUD else "other"}
    if provider in _CLOUD:
        infra["cloudProvider"] = _CLOUD[provider]
    infra["components"] = _components(runs)
    os_name = str(meta.get("os") or "unknown").split()[0].lower() or "unknown"
    doc: dict[str, Any] = {
        "header": {
            "formatVersion": FORMAT_VERSION,
            "formatVersionSpecificationUri": SPEC_URI,
            "reportId": str(uuid.uuid5(uuid.NAMESPACE_URL, "greentrack:" + ids)),
            "reportDatetime": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "reportStatus": "final"
            if all(r.get("status") == "finished" for r in runs)
            else "draft",
        },
        "task": task,
        "measures": [m for r in runs for m in _measures(r, __version__)],
        "system": {"os": os_name},
        "software": {"language": "python"},
        "infrastructure": infra,
        "environment": _environment(first),
    }
    if meta.get("python"):
        doc["software"]["version"] = str(meta["python"])
    if not doc["measures"]:  # a run that measured no device: say so with a zero, not nothing
        doc["measures"] = [{"measurementMethod": "greentrack", "version": __version__,
                            "powerConsumption": 0.0}]  # fmt: skip
    return doc


def render(report: Mapping[str, Any], **_options: Any) -> str:
    """The format's entry point (:mod:`greentrack.report.render`): the BoAmps JSON, validated
    against the shipped schemas when jsonschema is installed."""
    from greentrack.jsonout import dumps

    doc = boamps_document(report)
    try:
        validate(doc)
    except ImportError:
        pass
    return dumps(doc, indent=2, ensure_ascii=False) + "\n"
