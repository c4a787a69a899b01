"""Evaluating a trained model on a data set split: every figure the report shows, and its plots."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ferkit.data.dataset import FERDataset
from ferkit.data.labels import EMOTIONS
from ferkit.metrics import (
    apply_temperature,
    bootstrap_ci,
    classification_metrics,
    confusion_matrix_png,
    expected_calibration_error,
    fit_temperature,
    named_confusions,
    per_class_table,
    reliability_diagram_png,
)
from ferkit.models.checkpoint import TrainedModel
from ferkit.models.predict import predict_proba, predict_proba_modes
from ferkit.runtime import resolve_device

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "log_loss")
# Reported beside the headline by default; their views are shared, so they cost nothing extra.
REPORTED_MODES = ("none", "flip", "ten_crop", "multi_scale")


@dataclass(frozen=True)
class SplitProbabilities:
    """One model's probabilities on one split with one set of views, and what identifies them: the
    champion gate takes them instead of scoring the same images with the same views again."""

    split: str
    mode: str  # the TTA views
    fingerprint: str  # of the split's images and labels ("" when nothing was scored)
    weights_sha256: str  # of the model that scored them
    probs: np.ndarray  # (N, 7)

    @classmethod
    def nothing(cls, split: str = "val") -> SplitProbabilities:
        """No probabilities: serves no request."""
        return cls(split, "", "", "", np.zeros((0, len(EMOTIONS)), dtype=np.float32))

    def serves(self, fingerprint: str, weights_sha256: str, mode: str) -> bool:
        """True when these are the probabilities of those weights on those images with those views."""
        return bool(self.fingerprint) and (self.fingerprint, self.weights_sha256, self.mode) == (
            fingerprint,
            weights_sha256,
            mode,
        )


@dataclass
class EvaluationResult:
    split: str
    images: int
    tta: str  # the TTA mode behind the headline figures
    metrics: dict[str, float]  # headline figures (plus ece, ci bounds, named confusions)
    precision: str = "fp32"  # forward-pass precision of every figure
    tta_table: dict[str, dict[str, float]] = field(default_factory=dict)  # mode -> headline figures
    per_class: pd.DataFrame | None = None
    temperature: float | None = None  # fitted on val when asked
    calibrated: dict[str, float] = field(default_factory=dict)  # log loss and ECE after temperature scaling
    leakage_free: dict[str, float] = field(default_factory=dict)  # figures without test images that have a train copy
    leakage_free_images: int = 0
    classes_present: list[str] = field(default_factory=list)
    probs: np.ndarray | None = None
    labels: np.ndarray | None = None
    held_out: SplitProbabilities | None = None  # the temperature's split, scored with the headline views

    def flat_metrics(self) -> dict[str, float]:
        """Everything numeric under stable dotted names: `macro_f1`, `tta.ten_crop.macro_f1`, ..."""
        flat = dict(self.metrics)
        for mode, figures in self.tta_table.items():
            flat.update({f"tta.{mode}.{k}": v for k, v in figures.items()})
        flat.update({f"calibrated.{k}": v for k, v in self.calibrated.items()})
        flat.update({f"leakage_free.{k}": v for k, v in self.leakage_free.items()})
        if self.per_class is not None:  # recall of each emotion present in the split
            flat.update({f"recall.{r.emotion}": r.recall for r in self.per_class.itertuples() if r.support > 0})
        if self.temperature is not None:
            flat["temperature"] = self.temperature
        return {k: float(v) for k, v in flat.items() if v == v}  # drop NaN (absent classes)


def _headline_metrics(y: np.ndarray, probs: np.ndarray, bootstrap_resamples: int, seed: int) -> dict[str, float]:
    """Headline figures, ECE, bootstrap CIs of balanced accuracy and macro-F1, named confusions."""
    metrics = classification_metrics(y, probs)
    metrics["ece"] = expected_calibration_error(y, probs)
    for name in ("balanced_accuracy", "macro_f1"):
        low, high = bootstrap_ci(y, probs, name, n_resamples=bootstrap_resamples, seed=seed)
        metrics[f"{name}_ci_low"], metrics[f"{name}_ci_high"] = low, high
    metrics.update({f"confusion.{k}": v for k, v in named_confusions(y, probs).items()})
    return metrics


def evaluate(
    model: TrainedModel,
    data: FERDataset,
    split: str = "test",
    tta: str | None = None,
    tta_modes: tuple[str, ...] = REPORTED_MODES,
    fit_temperature_on: str | None = "val",
    leakage_mask: np.ndarray | None = None,
    bootstrap_resamples: int = 1000,
    seed: int = 0,
    precision: str | None = None,
    device: str = "auto",
) -> EvaluationResult:
    """Score `model` on `split`; averages run over the classes present in it.

    `tta` picks the headline mode (default: the recipe's, flip when it trained with
    flip); every mode in `tta_modes` is reported beside it. `leakage_mask` marks
    rows of `data` to leave out for the leakage-free figures. `precision` ("fp32" or
    "bf16") defaults to the recipe's, the precision the checkpoint was chosen at. `device`
    ("auto": CUDA when there is one) runs the forward passes.
    """
    subset = data.split(split)
    if len(subset) == 0:
        raise ValueError(f"the {split!r} split is empty; nothing to evaluate")
    network = model.build().to(resolve_device(device))
    headline_mode = tta or ("flip" if model.recipe.get("tta_flip") else "none")
    precision = precision or model.recipe.get("precision", "fp32")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    bf16 = precision == "bf16"
    modes = tuple(dict.fromkeys((headline_mode, *tta_modes)))
    probs_by_mode = predict_proba_modes(network, subset.images, modes, bf16=bf16)  # shared views once
    probs, y = probs_by_mode[headline_mode], subset.labels
    present = sorted(set(y.tolist()))
    metrics = _headline_metrics(y, probs, bootstrap_resamples, seed)
    result = EvaluationResult(
        split=split,
        images=len(subset),
        tta=headline_mode,
        precision=precision,
        metrics=metrics,
        tta_table={mode: classification_metrics(y, p) for mode, p in probs_by_mode.items()},
        per_class=per_class_table(y, probs),
        classes_present=[EMOTIONS[c] for c in present],
        probs=probs,
        labels=y,
    )

    if fit_temperature_on and fit_temperature_on != split and len(data.split(fit_temperature_on)):
        held_out = data.split(fit_temperature_on)
        held_out_probs = predict_proba(network, held_out.images, tta=headline_mode, bf16=bf16)
        _calibrate(result, fit_temperature(held_out.labels, held_out_probs))
        result.held_out = SplitProbabilities(
            fit_temperature_on, headline_mode, held_out.fingerprint, model.weights_sha256(), held_out_probs
        )
    if leakage_mask is not None:
        keep = ~np.asarray(leakage_mask)[data.split_mask(split)]
        result.leakage_free_images = int(keep.sum())
        if keep.any():
            result.leakage_free = classification_metrics(y[keep], probs[keep])
    return result


def _calibrate(result: EvaluationResult, temperature: float) -> None:
    """Log loss and ECE of the result's probabilities after temperature scaling."""
    scaled = apply_temperature(result.probs, temperature)
    result.temperature = temperature
    result.calibrated = {
        "log_loss": classification_metrics(result.labels, scaled)["log_loss"],
        "ece": expected_calibration_error(result.labels, scaled),
    }


def _png_tag(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{encoded}" style="max-width:100%">'


def _report_markdown(result: EvaluationResult, title: str) -> str:
    """The report's figures, TTA table, named confusions and per-class table as markdown."""
    m = result.metrics
    lines = [
        f"# Evaluation of {title} on {result.split} ({result.images} images)",
        "",
        f"Headline figures use test-time augmentation `{result.tta}` at {result.precision} precision. Classes present: "
        f"{', '.join(result.classes_present)}.",
        "",
        "| figure | value |",
        "|---|---:|",
        *[f"| {k} | {m[k]:.4f} |" for k in HEADLINE],
        f"| balanced accuracy, 95% bootstrap CI | {m['balanced_accuracy_ci_low']:.4f} - {m['balanced_accuracy_ci_high']:.4f} |",
        f"| macro-F1, 95% bootstrap CI | {m['macro_f1_ci_low']:.4f} - {m['macro_f1_ci_high']:.4f} |",
        f"| expected calibration error (15 bins) | {m['ece']:.4f} |",
    ]
    if result.temperature is not None:
        lines += [
            f"| temperature (fitted on val) | {result.temperature:.3f} |",
            f"| log loss / ECE after temperature scaling | {result.calibrated['log_loss']:.4f} / {result.calibrated['ece']:.4f} |",
        ]
    if result.leakage_free:
        lf = result.leakage_free
        lines.append(
            f"| leakage-free ({result.leakage_free_images} images): accuracy / balanced / macro-F1 | "
            f"{lf['accuracy']:.4f} / {lf['balanced_accuracy']:.4f} / {lf['macro_f1']:.4f} |"
        )
    lines += [
        "",
        "## Test-time augmentation",
        "",
        "| mode | " + " | ".join(HEADLINE) + " |",
        "|---|" + "---:|" * len(HEADLINE),
    ]
    for mode, figures in result.tta_table.items():
        lines.append(f"| {mode} | " + " | ".join(f"{figures[k]:.4f}" for k in HEADLINE) + " |")
    lines += ["", "## Named confusions (share of the true class)", "", "| confusion | share |", "|---|---:|"]
    lines += [
        f"| {k.split('.', 1)[1].replace('_to_', ' -> ')} | {v:.3f} |"
        for k, v in m.items()
        if k.startswith("confusion.")
    ]
    lines += ["", "## Per class", "", "| emotion | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for row in result.per_class.itertuples():
        lines.append(f"| {row.emotion} | {row.precision:.3f} | {row.recall:.3f} | {row.f1:.3f} | {row.support} |")
    return "\n".join(lines) + "\n"


def write_report(result: EvaluationResult, out_dir: str | Path, title: str = "fer_emotion") -> dict[str, Path]:
    """Confusion matrix and reliability PNGs, the per-class CSV, and report.md / report.html."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "confusion_matrix": out / "confusion_matrix.png",
        "reliability": out / "reliability_diagram.png",
        "per_class": out / "per_class.csv",
        "markdown": out / "report.md",
        "html": out / "report.html",
    }
    confusion_matrix_png(
        result.labels,
        result.probs,
        paths["confusion_matrix"],
        title=f"{result.split}: {result.images} images, TTA {result.tta}",
    )
    reliability_diagram_png(result.labels, result.probs, paths["reliability"], title=f"{result.split}, raw:")
    pictures = ["![confusion matrix](confusion_matrix.png)", "![reliability, raw](reliability_diagram.png)"]
    calibrated_tag = ""
    if result.temperature is not None:  # the same diagram after temperature scaling: calibration before and after
        paths["reliability_calibrated"] = out / "reliability_diagram_calibrated.png"
        scaled = apply_temperature(result.probs, result.temperature)
        reliability_diagram_png(
            result.labels,
            scaled,
            paths["reliability_calibrated"],
            title=f"{result.split}, T = {result.temperature:.2f}:",
        )
        pictures.append("![reliability, calibrated](reliability_diagram_calibrated.png)")
        calibrated_tag = f"<h2>Reliability after temperature scaling</h2>{_png_tag(paths['reliability_calibrated'])}"
    result.per_class.to_csv(paths["per_class"], index=False)

    markdown = _report_markdown(result, title)
    paths["markdown"].write_text(markdown + "\n" + "\n\n".join(pictures) + "\n")

    body = _markdown_tables_to_html(markdown)
    html = (
        "<!doctype html><html><head><meta charset='utf-8'><title>ferkit evaluation</title>"
        "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px}</style></head><body>"
        f"{body}<h2>Confusion matrix</h2>{_png_tag(paths['confusion_matrix'])}"
        f"<h2>Reliability</h2>{_png_tag(paths['reliability'])}{calibrated_tag}</body></html>"
    )
    paths["html"].write_text(html)
    return paths


def _markdown_tables_to_html(markdown: str) -> str:
    """Just enough markdown for this report: headings, paragraphs, pipe tables."""
    html, table = [], []

    def flush() -> None:
        if table:
            rows = [r for r in table if not set(r.replace("|", "").strip()) <= set("-:")]
            cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
            head = "".join(f"<th>{c}</th>" for c in cells[0])
            body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in cells[1:])
            html.append(f"<table><tr>{head}</tr>{body}</table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("## "):
            html.append(f"<h2>{line[3:]}</h2>")
        elif line.startswith("# "):
            html.append(f"<h1>{line[2:]}</h1>")
        elif line.strip():
            html.append(f"<p>{line}</p>")
    flush()
    return "\n".join(html)


def gate_views(model: TrainedModel, metric: str) -> str:
    """The TTA mode a gate metric names: `tta.<mode>.<figure>` that mode, any other figure the
    recipe's headline mode (flip when it trained with flip), as `evaluate` scores."""
    parts = metric.split(".")
    return parts[1] if len(parts) == 3 and parts[0] == "tta" else ("flip" if model.recipe.get("tta_flip") else "none")


def probabilities_for(model: TrainedModel, images: np.ndarray, metric: str) -> np.ndarray:
    """(N, 7) probabilities with the views a gate metric names (`gate_views`), at the recipe's
    precision, on CUDA when there is one."""
    mode = gate_views(model, metric)
    bf16 = model.recipe.get("precision", "fp32") == "bf16"
    return predict_proba_modes(model.build().to(resolve_device("auto")), images, (mode,), bf16=bf16)[mode]
