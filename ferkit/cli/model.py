"""ferkit evaluate | predict: score a saved or registered model, or read the emotions of photos."""

from __future__ import annotations

import argparse
import json

from ferkit.cli.data import print_unread
from ferkit.cli.errors import NOT_FOUND, CommandError
from ferkit.models.views import TTA_MODES

DEFAULT_MODEL = "models:/fer_emotion@champion"


def add_commands(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("evaluate", help="evaluate a saved or registered model on any data ingest reads")
    ev.add_argument("--model", required=True, help="checkpoint file or models:/fer_emotion@champion")
    ev.add_argument("--data", default=None, help="FER2013 zip, folder or CSV (default: $FER2013_PATH)")
    ev.add_argument("--split", default="test", choices=["train", "val", "test"], help="the split to score")
    ev.add_argument(
        "--tta",
        choices=TTA_MODES,
        default=None,
        help="headline test-time augmentation (default: the mode the registry gated the version on, "
        "else the recipe's); every mode is reported",
    )
    ev.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs")
    ev.add_argument("--report", help="folder for the report (markdown, HTML, PNGs)")
    ev.add_argument("--json", action="store_true", help="print JSON: figures, per-class table, confusion matrix")
    ev.set_defaults(func=_evaluate)
    pd_ = sub.add_parser("predict", help="find faces in images and predict their emotions")
    pd_.add_argument("paths", nargs="+", help="image files or folders")
    pd_.add_argument("--model", default=DEFAULT_MODEL, help="checkpoint file or models:/ URI")
    pd_.add_argument("--no-detect", action="store_true", help="treat each image as one pre-cropped face")
    pd_.add_argument("--json", action="store_true", help="print JSON: boxes, labels, probabilities")
    pd_.set_defaults(func=_predict)


def _evaluate(args: argparse.Namespace) -> int:
    from ferkit.data import read_fer2013
    from ferkit.inference import evaluate, write_report
    from ferkit.quality.checks import train_copy_mask
    from ferkit.registry.store import load_trained_model, registered_tta
    from ferkit.runtime import progress_disabled

    model = load_trained_model(args.model)
    tta = args.tta or registered_tta(args.model)  # reproduce the registry's figures by default
    data = read_fer2013(args.data, progress=not (args.json or progress_disabled()))
    if data.split_counts()[args.split] == 0:
        raise CommandError(f"{data.report.source} has no {args.split} images to evaluate", NOT_FOUND)
    has_val = data.split_counts()["val"] > 0 and args.split != "val"
    result = evaluate(model, data, split=args.split, tta=tta, fit_temperature_on="val" if has_val else None,
                      leakage_mask=train_copy_mask(data), bootstrap_resamples=args.bootstrap)  # fmt: skip
    if args.report:
        write_report(result, args.report)
    if args.json:
        unread = {"bad_reasons": data.report.bad_reasons, "refused_links": data.report.refused_links}
        print(json.dumps({**_evaluation_json(args, result), "unread": unread}, indent=2))
        return 0
    print(
        f"{args.model} on {args.split} ({result.images} images, TTA {result.tta}); "
        f"classes: {', '.join(result.classes_present)}"
    )
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "log_loss", "ece"):
        print(f"  {key:18s} {result.metrics[key]:.4f}")
    print_unread(data.report)
    return 0


def _evaluation_json(args: argparse.Namespace, result) -> dict:
    """Figures, the per-class table and the confusion matrix (rows: true emotion, columns: predicted)."""
    from sklearn.metrics import confusion_matrix

    from ferkit.data.labels import EMOTIONS

    counts = confusion_matrix(result.labels, result.probs.argmax(axis=1), labels=list(range(len(EMOTIONS))))
    per_class = [
        {"emotion": row.emotion, "precision": float(row.precision), "recall": float(row.recall),
         "f1": float(row.f1), "support": int(row.support)}
        for row in result.per_class.itertuples()
    ]  # fmt: skip
    return {
        "model": args.model,
        "data": str(args.data),
        "split": args.split,
        "tta": result.tta,
        "images": result.images,
        "classes_present": result.classes_present,
        "metrics": result.flat_metrics(),
        "per_class": per_class,
        "confusion_matrix": {"labels": list(EMOTIONS), "counts": counts.tolist()},
    }


def _predict(args: argparse.Namespace) -> int:
    """Exit 0 when every file was read (faces found or not), 1 when some could not be read."""
    from ferkit.inference.photos import faces_in_file, image_files
    from ferkit.inference.predictor import Predictor
    from ferkit.registry.store import load_trained_model

    predictor = Predictor(load_trained_model(args.model))
    results, failed = [], 0
    for path in image_files(args.paths):
        found = faces_in_file(path, detect=not args.no_detect)
        entry: dict = {"file": str(path), "faces": []}
        if found.error:
            entry["error"] = found.error
            failed += found.error.startswith("cannot read")
        for box, prediction in zip(found.boxes, predictor.predict(found.crops) if found.crops else []):
            entry["faces"].append({"box": list(box), **prediction})
        results.append(entry)
    if args.json:
        print(json.dumps(results, indent=2))
        return 1 if failed else 0
    for entry in results:
        if "error" in entry and not entry["faces"]:
            print(f"{entry['file']}: {entry['error']}")
        for face in entry["faces"]:
            top = face["probabilities"][face["label"]]
            print(f"{entry['file']}: box {tuple(face['box'])} -> {face['label']} ({top:.2f})")
    return 1 if failed else 0
