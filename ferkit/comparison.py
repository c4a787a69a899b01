"""The backbone comparison: one fer_training run config per row, all in one MLflow experiment,
and the side-by-side table of what each row measured.

`configs/compare_backbones.yaml` names a base config, the backbones with their own model
arguments, baselines (other architectures, such as the plain CNN), one input size and one
epoch budget for every row, the experiment and a registered-model name of its own (so a
comparison never touches `fer_emotion`). MLflow is read in `ferkit.registry.comparison`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path

import yaml

SPEC_KEYS = {"base", "backbones", "experiment_name", "registered_model_name"}
OPTIONAL_KEYS = {
    "epochs",
    "input_size",
    "limit_per_class",
    "train_overrides",
    "step_overrides",
    "baselines",
    "published",
}
ROW_TAG = "backbone"  # MLflow run tag: the row's name
COMPARISON_TAG = "comparison"  # MLflow run tag: the spec's file stem
CONFIG_TAG = "comparison.config"  # MLflow run tag: fingerprint of the row's run config
VERSION_TAG_PREFIX = "compare."  # registry tags of a row's version: its figures

# (key, header, format) of the table, in order; percentages are of fractions.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("row", "backbone", "{}"),
    ("parameters_m", "params M", "{:.2f}"),
    ("accuracy", "acc %", "pct"),
    ("balanced_accuracy", "bal acc %", "pct"),
    ("macro_f1", "macro-F1 %", "pct"),
    ("log_loss", "log loss", "{:.3f}"),
    ("recall_fear", "fear rec %", "pct"),
    ("recall_disgust", "disgust rec %", "pct"),
    ("val_macro_f1", "val macro-F1 %", "pct"),
    ("train_images_per_second", "train img/s", "{:.0f}"),
    ("train_minutes", "train min", "{:.1f}"),
    ("inference_faces_per_second", "infer faces/s", "{:.0f}"),
)


def _base_config(spec_path: Path, spec: dict) -> dict:
    base_path = Path(spec["base"])
    if not base_path.is_file() and (spec_path.parent / base_path).is_file():
        base_path = spec_path.parent / base_path  # relative to the spec rather than the working folder
    base = yaml.safe_load(base_path.read_text())
    architecture = base["steps"]["train_model"]["parameters"]["config"].get("architecture")
    if architecture != "hybrid":
        raise ValueError(
            f"{base_path}: the comparison swaps the hybrid model's backbone; architecture is {architecture!r}"
        )
    return base


def _hybrid_kwargs(base_kwargs: dict, name: str, overrides: dict | None, input_size: int | None) -> dict:
    kwargs = dict(base_kwargs)
    if name != kwargs.get("backbone"):
        kwargs.pop("backbone_options", None)  # options of the base trunk mean nothing to another
    kwargs.update({"backbone": name, **({"input_size": input_size} if input_size else {}), **(overrides or {})})
    return kwargs


def _baseline(name: str, entry: dict, spec_path: Path) -> tuple[str, dict]:
    if not isinstance(entry, dict) or "architecture" not in entry:
        raise ValueError(f"{spec_path}: baseline {name!r} needs an `architecture` (and its `architecture_kwargs`)")
    return entry["architecture"], dict(entry.get("architecture_kwargs") or {})


def _row_config(base: dict, spec: dict, spec_path: Path, name: str, architecture: str, kwargs: dict) -> dict:
    config = copy.deepcopy(base)
    trained = config["steps"]["train_model"]["parameters"]["config"]
    trained["architecture"], trained["architecture_kwargs"] = architecture, kwargs
    trained.update(copy.deepcopy(spec.get("train_overrides") or {}))
    if spec.get("epochs"):
        for phase in trained.get("phases") or []:
            phase["epochs"] = min(phase["epochs"], spec["epochs"])
        trained["epochs"] = min(trained.get("epochs", spec["epochs"]), spec["epochs"])
    for step, parameters in (spec.get("step_overrides") or {}).items():
        config["steps"].setdefault(step, {}).setdefault("parameters", {}).update(copy.deepcopy(parameters))
    if spec.get("limit_per_class"):
        ingest = config["steps"].setdefault("ingest_fer2013", {})
        ingest.setdefault("parameters", {})["limit_per_class"] = spec["limit_per_class"]
    config["steps"].setdefault("register_model", {}).setdefault("parameters", {})["registered_model_name"] = spec[
        "registered_model_name"
    ]
    config["model"] = {**config.get("model", {}), "name": spec["registered_model_name"]}
    tags = {COMPARISON_TAG: spec_path.stem, ROW_TAG: name, CONFIG_TAG: config_fingerprint(name, config)}
    config.setdefault("settings", {})["experiment_tracker"] = {"experiment_name": spec["experiment_name"], "tags": tags}
    config["run_name"] = f"{spec_path.stem}-{name}-{{date}}-{{time}}"
    return config


# The steps whose parameters shape a row's weights; evaluation, drift and registration do not.
WEIGHT_STEPS = ("ingest_fer2013", "oversample_minority", "compute_class_weights", "train_model")


def config_fingerprint(name: str, config: dict) -> str:
    """The row and what shapes its weights (data path, the steps before and including training), so a
    finished run of the same row is not trained again and a changed recipe is."""
    steps = config.get("steps") or {}
    shaping = {
        "row": name,
        "parameters": config.get("parameters") or {},
        **{step: (steps.get(step) or {}).get("parameters") or {} for step in WEIGHT_STEPS},
    }
    return hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_spec(spec_path: str | Path) -> dict:
    spec_path = Path(spec_path)
    spec = yaml.safe_load(spec_path.read_text())
    if not isinstance(spec, dict):
        raise ValueError(f"{spec_path}: expected a mapping of {sorted(SPEC_KEYS)}")
    missing = SPEC_KEYS - set(spec)
    if missing:
        raise ValueError(f"{spec_path}: missing {sorted(missing)}")
    unknown = set(spec) - SPEC_KEYS - OPTIONAL_KEYS
    if unknown:
        raise ValueError(f"{spec_path}: unknown keys {sorted(unknown)} (known: {sorted(SPEC_KEYS | OPTIONAL_KEYS)})")
    return spec


def comparison_configs(spec_path: str | Path) -> dict[str, dict]:
    """row name -> a full fer_training config: the spec's base config with that backbone (or a
    baseline's architecture), the shared input size, epoch budget and step settings, one MLflow
    experiment and a registered-model name of its own."""
    spec_path = Path(spec_path)
    spec = read_spec(spec_path)
    base = _base_config(spec_path, spec)
    base_kwargs = base["steps"]["train_model"]["parameters"]["config"]["architecture_kwargs"]
    rows = {
        name: ("hybrid", _hybrid_kwargs(base_kwargs, name, overrides, spec.get("input_size")))
        for name, overrides in (spec["backbones"] or {}).items()
    }
    for name, entry in (spec.get("baselines") or {}).items():
        if name in rows:
            raise ValueError(f"{spec_path}: {name!r} is both a backbone and a baseline")
        rows[name] = _baseline(name, entry, spec_path)
    return {name: _row_config(base, spec, spec_path, name, *row) for name, row in rows.items()}


def run_comparison(
    configs: dict[str, dict], names: Sequence[str], zenml: str, dry_run: bool = False, done: Collection[str] = ()
) -> list[str]:
    """Run `zenml pipeline run pipelines.fer_training` once per row in `names` that is not in `done`
    (a finished run of the same row fingerprint); returns the rows whose run failed.

    A row trains from scratch (caching off, its resume state removed): every figure of a row
    comes from one run. With `dry_run` each run's train config is printed and nothing runs.
    """
    failed = []
    with tempfile.TemporaryDirectory(prefix="ferkit-compare-") as folder:
        for i, name in enumerate(names, 1):
            if name in done:
                print(f"== {name} ({i}/{len(names)}): done already (a finished run of this row)", flush=True)
                continue
            if dry_run:
                print(f"== {name} ({i}/{len(names)})", flush=True)
                print(yaml.safe_dump(configs[name]["steps"]["train_model"]["parameters"]["config"], sort_keys=False))
                continue
            from ferkit.training.train import fresh_run_config

            path, _, _ = fresh_run_config(configs[name], Path(folder) / f"{name}.yaml")
            command = [zenml, "pipeline", "run", "pipelines.fer_training", "-c", str(path)]
            print(f"== {name} ({i}/{len(names)}): {' '.join(command[1:4])}, from scratch", flush=True)
            if subprocess.run(command, env={**os.environ, "FERKIT_CONFIG_FILE": str(path)}).returncode != 0:
                failed.append(name)
    return failed


# --- the table ------------------------------------------------------------------------------------


def _cell(value, fmt: str) -> str:
    if value is None or value == "":
        return "-"
    if fmt == "pct":
        return f"{100 * float(value):.2f}"
    return fmt.format(value)


def format_table(rows: Sequence[dict], markdown: bool = False, extra: Sequence[tuple[str, str, str]] = ()) -> str:
    """The rows as an aligned text table (or a Markdown one), in COLUMNS order plus `extra`."""
    columns = list(COLUMNS) + list(extra)
    cells = [[_cell(row.get(key), fmt) for key, _, fmt in columns] for row in rows]
    headers = [header for _, header, _ in columns]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths)))

    return "\n".join([line(headers)] + [line(r) for r in cells])


def write_report(rows: Sequence[dict], spec: dict, out: str | Path, meta: dict) -> dict[str, Path]:
    """`comparison.md` (the table and what it rests on), `comparison.json` and, when a row has both
    figures to plot, `comparison.png` (balanced accuracy against inference speed) in `out`, each
    written whole or not at all."""
    from ferkit.files import atomic_write_text
    from ferkit.metrics.speed_accuracy import speed_accuracy_png

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    published = spec.get("published") or {}
    paths = {"md": out / "comparison.md", "json": out / "comparison.json"}
    if any(r.get("balanced_accuracy") is not None and r.get("inference_faces_per_second") for r in rows):
        paths["png"] = speed_accuracy_png(rows, published, out / "comparison.png")
    atomic_write_text(paths["json"], json.dumps({**meta, "rows": list(rows), "published": published}, indent=2))
    header = ", ".join(f"{k}: {v}" for k, v in meta.items())
    reported = [
        f"- published {name}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in figures.items())
        for name, figures in published.items()
    ]
    if "png" not in paths:
        reported.append("- no chart: no row has both a balanced accuracy and an inference speed")
    text = f"{header}\n\n{format_table(rows, markdown=True)}\n" + (
        "\n" + "\n".join(reported) + "\n" if reported else ""
    )
    atomic_write_text(paths["md"], text)
    return paths


def report_meta(spec_path: str | Path, spec: dict, config: dict) -> dict:
    """What the table's figures rest on: the budget every row shared, the machine, the date."""
    import datetime
    import platform

    trained = config["steps"]["train_model"]["parameters"]["config"]
    epochs = [p["epochs"] for p in trained.get("phases") or []] or [trained.get("epochs")]
    return {
        "spec": str(spec_path),
        "date": datetime.date.today().isoformat(),
        "machine": f"{_cpu_model() or platform.machine()}, {os.cpu_count()} cores",
        "epochs": sum(e for e in epochs if e),
        "input_size": spec.get("input_size") or trained["architecture_kwargs"].get("input_size", 48),
        "limit_per_class": spec.get("limit_per_class"),
    }


def _cpu_model() -> str | None:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
