"""How good are the synthetic faces? Scores against a classifier trained on real faces.

Inception weights cannot be downloaded here, so FID (Heusel et al. 2017) and KID
(Binkowski et al. 2018) are computed on the penultimate features of a plain CNN
(the "judge") trained on the real training faces. They rank generators on this data
but are not comparable with published Inception FIDs. Every score comes with its
real-data reference: the same score for real validation faces against the real
training faces, which is what a perfect generator would get.

- `fid`, `kid`: generated faces of a class against the real training faces of that class.
- `agreement`: share of generated faces the judge assigns to the class they were asked
  for; the reference is the judge's recall on real validation faces.
- `nn_distance`: RMS pixel distance (0-1 scale) from each generated face to its nearest
  real training face; `copy_share` is the share closer than `copy_threshold` (0.02: about
  five grey levels, the same photo). FER2013 itself has such near-copies across splits;
  `copy_share_real_reference` is their share among the real validation faces.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from scipy import linalg

from ferkit.data.dataset import FERDataset
from ferkit.data.labels import EMOTIONS
from ferkit.data.weights import class_weights
from ferkit.gan.oversample import TrainedGenerator, real_training_faces
from ferkit.gan.train import generate
from ferkit.models import build_model
from ferkit.models.predict import to_input
from ferkit.training import TrainConfig, fit, seed_everything


class QualityConfig(BaseModel):
    """The judge classifier and how many faces each score uses."""

    model_config = ConfigDict(extra="forbid")

    judge_epochs: int = Field(3, ge=1)  # epochs of the real-data classifier whose features score the faces
    judge_widths: list[int] = Field(default_factory=lambda: [16, 32, 64, 128])  # its plain-CNN widths
    judge_max_batches: int | None = Field(None, ge=1)  # cap per epoch, for smoke runs
    samples_per_class: int = Field(400, ge=2)  # generated faces per emotion for the scores
    kid_subsets: int = Field(20, ge=1)  # random subsets averaged for KID
    kid_subset_size: int = Field(100, ge=2)  # faces per subset (capped by what there is)
    copy_threshold: float = Field(0.02, gt=0, lt=1)  # RMS pixel distance (0-1) under which a face is a copy
    precision: Literal["auto", "fp32", "bf16"] = "fp32"  # the judge's training: bf16 autocast, or auto (where native)
    seed: int = 0


@dataclass
class Judge:
    model: torch.nn.Module
    val_macro_f1: float
    epochs: int

    @torch.no_grad()
    def features_and_probs(self, images: np.ndarray, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        self.model.eval()
        device = next(self.model.parameters()).device  # where it trained: CUDA when there is one
        feats, probs = [], []
        for start in range(0, len(images), batch_size):
            x = to_input(images[start : start + batch_size]).to(device)  # (B, 1, 48, 48)
            h = self.model.forward_features(x)  # (B, C)
            feats.append(h.float().cpu().numpy())
            probs.append(self.model.head[3](h).float().softmax(1).cpu().numpy())  # the classifier on the features
        if not feats:
            return np.zeros((0, 1)), np.zeros((0, len(EMOTIONS)))
        return np.concatenate(feats).astype(np.float64), np.concatenate(probs)


def train_judge(dataset: FERDataset, config: QualityConfig) -> Judge:
    """A plain CNN trained on the real training faces, checkpoint chosen on val."""
    train, val = real_training_faces(dataset), dataset.split("val")
    recipe = TrainConfig(
        architecture="plain_cnn",
        architecture_kwargs={"widths": config.judge_widths},
        epochs=config.judge_epochs,
        lr=0.05,
        early_stopping_patience=None,
        tta_flip=False,
        max_batches_per_epoch=config.judge_max_batches,
        precision=config.precision,
        seed=config.seed,
    )
    seed_everything(config.seed)
    model = build_model("plain_cnn", widths=config.judge_widths)
    weights = class_weights(train.labels, "inverse_frequency").as_list()
    result = fit(model, train.images, train.labels, val.images, val.labels, recipe, class_weights=weights)
    model.load_state_dict(result.state_dict)
    return Judge(model.eval().float(), result.best_val_macro_f1, recipe.total_epochs)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two feature sets (N, C): |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # few faces: a singular product, handled below
        covmean = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(covmean).all():  # nudge the diagonals
            eps = np.eye(len(cov_a)) * 1e-6
            covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * np.real(covmean)))


def kernel_distance(a: np.ndarray, b: np.ndarray, subsets: int = 20, subset_size: int = 100, seed: int = 0) -> float:
    """KID: unbiased MMD^2 with the cubic polynomial kernel, averaged over random subsets."""
    rng = np.random.default_rng(seed)
    m = min(subset_size, len(a), len(b))
    d = a.shape[1]
    total = 0.0
    for _ in range(subsets):
        x, y = a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        off = m * (m - 1)
        total += (kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean()
    return float(total / subsets)


def nearest_distances(queries: np.ndarray, reference: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """RMS pixel distance (0-1 scale) from each query face to its nearest reference face, and that face's index."""
    ref = torch.from_numpy(reference.reshape(len(reference), -1)).float() / 255.0  # (M, D)
    ref_sq = (ref * ref).sum(1)
    dists, index = [], []
    for start in range(0, len(queries), chunk):
        q = torch.from_numpy(queries[start : start + chunk].reshape(-1, ref.shape[1])).float() / 255.0  # (B, D)
        d2 = (q * q).sum(1, keepdim=True) + ref_sq[None] - 2 * q @ ref.T  # (B, M)
        best, where = d2.min(1)
        dists.append(best.clamp_min(0).div(ref.shape[1]).sqrt())
        index.append(where)
    if not dists:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    return torch.cat(dists).numpy(), torch.cat(index).numpy()


@dataclass
class QualityResult:
    report: dict  # per-emotion scores and references, JSON-ready
    samples: dict[str, np.ndarray]  # emotion -> generated faces (uint8) the scores used
    nearest: dict[str, np.ndarray]  # emotion -> each sample's nearest real training face
    distances: dict[str, np.ndarray]  # emotion -> nearest-neighbour distances of the samples
    reference_distances: np.ndarray  # real val faces -> nearest real training face


def assess(
    generator: TrainedGenerator,
    dataset: FERDataset,
    config: QualityConfig,
    emotions: tuple[str, ...] = EMOTIONS,
    judge: Judge | None = None,
) -> QualityResult:
    """Score the generator's faces for `emotions` against the real faces of `dataset`."""
    judge = judge or train_judge(dataset, config)
    train, val = real_training_faces(dataset), dataset.split("val")
    train_feats, _ = judge.features_and_probs(train.images)
    val_feats, val_probs = judge.features_and_probs(val.images)
    reference, _ = nearest_distances(val.images, train.images)
    threshold = config.copy_threshold
    net = generator.build()
    report: dict = {
        "feature_extractor": (
            f"plain CNN {config.judge_widths} trained {judge.epochs} epochs on the real training faces "
            f"(val macro-F1 {judge.val_macro_f1:.3f}); Inception weights cannot be downloaded here, so FID "
            "and KID are on its penultimate features and not comparable with published Inception figures"
        ),
        "judge_val_macro_f1": round(judge.val_macro_f1, 4),
        "copy_threshold": round(threshold, 4),
        "classes": {},
    }
    samples, nearest, distances = {}, {}, {}
    for emotion in emotions:
        c = EMOTIONS.index(emotion)
        faces = generate(net, np.full(config.samples_per_class, c), seed=config.seed + 1000 + c)
        feats, probs = judge.features_and_probs(faces)
        real_train, real_val = train_feats[train.labels == c], val_feats[val.labels == c]
        dist, where = nearest_distances(faces, train.images)
        row = {
            "agreement": float((probs.argmax(1) == c).mean()),
            "agreement_real_reference": float((val_probs[val.labels == c].argmax(1) == c).mean())
            if len(real_val)
            else float("nan"),
            "nn_distance_median": float(np.median(dist)),
            "nn_distance_reference_median": float(np.median(reference[val.labels == c]))
            if len(real_val)
            else float("nan"),
            "copy_share": float((dist < threshold).mean()),
            "copy_share_real_reference": float((reference[val.labels == c] < threshold).mean())
            if len(real_val)
            else float("nan"),
        }
        if len(real_train) >= 2:
            row["fid"] = frechet_distance(feats, real_train)
            row["kid"] = kernel_distance(feats, real_train, config.kid_subsets, config.kid_subset_size, config.seed)
        if len(real_train) >= 2 and len(real_val) >= 2:
            row["fid_real_reference"] = frechet_distance(real_val, real_train)
            row["kid_real_reference"] = kernel_distance(
                real_val, real_train, config.kid_subsets, config.kid_subset_size, config.seed
            )
        report["classes"][emotion] = {k: round(v, 4) for k, v in row.items()}
        samples[emotion], nearest[emotion], distances[emotion] = faces, train.images[where], dist
    return QualityResult(report, samples, nearest, distances, reference)


def metrics(report: dict) -> dict[str, float]:
    """Flat `<score>.<emotion>` figures for a tracker."""
    out = {"judge_val_macro_f1": report["judge_val_macro_f1"], "copy_threshold": report["copy_threshold"]}
    for emotion, row in report["classes"].items():
        out.update({f"{k}.{emotion}": v for k, v in row.items() if np.isfinite(v)})
    return out


def markdown(report: dict) -> str:
    """The report as a table, one row per emotion."""
    cols = [
        "fid",
        "fid_real_reference",
        "kid",
        "kid_real_reference",
        "agreement",
        "agreement_real_reference",
        "nn_distance_median",
        "nn_distance_reference_median",
        "copy_share",
        "copy_share_real_reference",
    ]
    lines = [
        "# Synthetic face quality",
        "",
        report["feature_extractor"] + ".",
        "",
        f"A face closer to a training face than {report['copy_threshold']:.4f} RMS counts as a copy.",
        "",
        "| emotion | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for emotion, row in report["classes"].items():
        lines.append(f"| {emotion} | " + " | ".join(f"{row.get(c, float('nan')):.4f}" for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _tile(faces: np.ndarray, columns: int) -> np.ndarray:
    rows = -(-len(faces) // columns)
    canvas = np.zeros((rows * 50, columns * 50), dtype=np.uint8)
    for i, face in enumerate(faces):
        r, c = divmod(i, columns)
        canvas[r * 50 + 1 : r * 50 + 49, c * 50 + 1 : c * 50 + 49] = face
    return canvas


def sample_grid_png(faces: np.ndarray, path: str | Path, columns: int = 8, scale: int = 2) -> Path:
    """Up to columns^2 faces tiled into one grayscale PNG."""
    from PIL import Image

    if len(faces) == 0:
        raise ValueError("no faces to tile")
    canvas = _tile(faces[: columns * columns], columns)
    path = Path(path)
    Image.fromarray(canvas).resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST).save(path)
    return path


def nearest_pairs_png(
    faces: np.ndarray, nearest: np.ndarray, distances: np.ndarray, path: str | Path, columns: int = 8
) -> Path:
    """The closest generated faces (top rows) above their nearest training faces (bottom rows)."""
    from PIL import Image

    order = np.argsort(distances)[:columns]
    canvas = np.concatenate([_tile(faces[order], columns), _tile(nearest[order], columns)])
    path = Path(path)
    Image.fromarray(canvas).resize((canvas.shape[1] * 2, canvas.shape[0] * 2), Image.NEAREST).save(path)
    return path


def distance_histogram_png(result: QualityResult, path: str | Path) -> Path:
    """Nearest-neighbour distances of generated faces per emotion against real validation faces."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(
        0,
        max([result.reference_distances.max(initial=0.3)] + [d.max(initial=0) for d in result.distances.values()]),
        50,
    )
    ax.hist(
        result.reference_distances,
        bins=bins,
        density=True,
        histtype="step",
        color="black",
        lw=2,
        label="real val -> train (reference)",
    )
    for emotion, dist in result.distances.items():
        ax.hist(dist, bins=bins, density=True, histtype="step", label=f"generated {emotion}")
    ax.axvline(result.report["copy_threshold"], ls=":", color="red", label="copy threshold")
    ax.set_xlabel("RMS pixel distance to the nearest training face")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(result: QualityResult, folder: str | Path) -> list[Path]:
    """samples/<emotion>.png, nearest/<emotion>.png and nn_distance.png under `folder`."""
    folder = Path(folder)
    (folder / "samples").mkdir(parents=True, exist_ok=True)
    (folder / "nearest").mkdir(parents=True, exist_ok=True)
    paths = [distance_histogram_png(result, folder / "nn_distance.png")]
    for emotion, faces in result.samples.items():
        paths.append(sample_grid_png(faces, folder / "samples" / f"{emotion}.png"))
        paths.append(
            nearest_pairs_png(
                faces, result.nearest[emotion], result.distances[emotion], folder / "nearest" / f"{emotion}.png"
            )
        )
    return paths
