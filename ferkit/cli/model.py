"""ferkit evaluate | predict: score a saved or registered model, or read the emotions of faces."""

from __future__ import annotations

import argparse
import json

from ferkit.cli import predict
from ferkit.cli.data import print_unread
from ferkit.cli.errors import NOT_FOUND, CommandError
from ferkit.models.views import TTA_MODES


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
    ev.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default=None,
        help="precision of the forward passes (default: the recipe's, the one the checkpoint was chosen at)",
    )
    ev.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs")
    ev.add_argument("--report", help="folder for the report (markdown, HTML, PNGs)")
    ev.add_argument("--json", action="store_true", help="print JSON: figures, per-class table, confusion matrix")
    ev.set_defaults(func=_evaluate)
    predict.add_command(sub)
    ex = sub.add_parser(
        "export",
        help="export a model for deployment (ONNX, preprocessing and calibration included)",
        description="Writes one .onnx file: input `faces` float32 (N, 1, 48, 48) in [0, 1]; outputs "
        "`probabilities` (calibrated) and `raw_probabilities`; label order and preprocessing in its metadata.",
    )
    ex.add_argument("--model", default=predict.DEFAULT_MODEL, help="checkpoint file or models:/ URI")
    ex.add_argument("--format", default="onnx", choices=["onnx"], help="the export format")
    ex.add_argument("-o", "--output", required=True, help="the file to write, e.g. model.onnx")
    ex.add_argument(
        "--int8",
        action="store_true",
        help="quantize to int8 (ONNX Runtime static quantization), calibrated on 4,096 training faces of --data",
    )
    ex.add_argument("--data", default=None, help="FER2013 zip, folder or CSV for --int8 (default: $FER2013_PATH)")
    ex.set_defaults(func=_export)
    sv = sub.add_parser(
        "serve",
        help="serve a web page (upload a photo or use the camera) and its JSON API",
        description="GET / is the page; POST /api/predict takes an image (body or form field `image`) and "
        "answers JSON: the faces, their boxes, labels and probabilities.",
    )
    sv.add_argument("--model", default=predict.DEFAULT_MODEL, help="checkpoint file, models:/ URI or .onnx file")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    sv.add_argument("--port", type=_port, default=8000, help="port to listen on (1 to 65535)")
    sv.add_argument("--min-confidence", type=float, default=None, help="default threshold for `uncertain` (0.4)")
    sv.set_defaults(func=_serve)


def _port(text: str) -> int:
    """A TCP port, 1 to 65535 (a larger number would wrap round to another port; 0 would pick one the
    announced address does not name)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: 1 to 65535")
    return port


def _evaluate(args: argparse.Namespace) -> int:
    from ferkit.data import read_fer2013
    from ferkit.inference import evaluate, write_report
    from ferkit.quality.checks import train_copy_mask
    from ferkit.registry.store import load_trained_model, registered_tta
    from ferkit.runtime import progress_disabled

    if args.bootstrap < 1:
        raise CommandError(f"--bootstrap must be at least 1 resample, got {args.bootstrap}")
    model = load_trained_model(args.model)
    tta = args.tta or registered_tta(args.model)  # reproduce the registry's figures by default
    data = read_fer2013(args.data, progress=not (args.json or progress_disabled()))
    if data.split_counts()[args.split] == 0:
        raise CommandError(f"{data.report.source} has no {args.split} images to evaluate", NOT_FOUND)
    has_val = data.split_counts()["val"] > 0 and args.split != "val"
    result = evaluate(model, data, split=args.split, tta=tta, fit_temperature_on="val" if has_val else None,
                      leakage_mask=train_copy_mask(data), bootstrap_resamples=args.bootstrap,
                      precision=args.precision)  # fmt: skip
    if args.report:
        write_report(result, args.report)
    if args.json:
        unread = {"bad_reasons": data.report.bad_reasons, "refused_links": data.report.refused_links}
        print(json.dumps({**_evaluation_json(args, result, data.report.source), "unread": unread}, indent=2))
        return 0
    print(
        f"{args.model} on {args.split} ({result.images} images, TTA {result.tta}, {result.precision}); "
        f"classes: {', '.join(result.classes_present)}"
    )
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "log_loss", "ece"):
        print(f"  {key:18s} {result.metrics[key]:.4f}")
    print_unread(data.report)
    return 0


def _evaluation_json(args: argparse.Namespace, result, source: str) -> dict:
    """Figures, the per-class table and the confusion matrix (rows: true emotion, columns: predicted);
    `source` is the data read (`--data`, else $FER2013_PATH)."""
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
        "data": source,
        "split": args.split,
        "tta": result.tta,
        "precision": result.precision,
        "images": result.images,
        "classes_present": result.classes_present,
        "metrics": result.flat_metrics(),
        "per_class": per_class,
        "confusion_matrix": {"labels": list(EMOTIONS), "counts": counts.tolist()},
    }


def _export(args: argparse.Namespace) -> int:
    import contextlib
    import io
    import tempfile
    from pathlib import Path

    from ferkit.files import atomic_write
    from ferkit.inference.onnx_model import export_onnx
    from ferkit.registry.store import load_trained_model

    model = load_trained_model(args.model)
    calibration = _calibration_faces(args.data) if args.int8 else None  # a data problem stops before exporting
    with tempfile.TemporaryDirectory() as tmp:  # the file asked for appears only when all went well
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter's own progress lines
            fp32 = export_onnx(model, Path(tmp) / "model.onnx")
        if calibration is not None:
            from ferkit.inference.onnx_model import quantize_onnx

            path = quantize_onnx(fp32, args.output, calibration)
        else:
            path = atomic_write(args.output, lambda file: file.write(fp32.read_bytes()))
    kind = "int8" if args.int8 else "fp32"
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {kind}): {model.architecture}, temperature {model.temperature:.3f}"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ferkit.inference.web import create_app

    predict.check_threshold(args.min_confidence)
    predictor = predict.load_predictor(args.model, min_confidence=args.min_confidence)
    print(f"ferkit serve: {args.model} on http://{args.host}:{args.port}/ (Ctrl-C stops)", flush=True)
    uvicorn.run(create_app(predictor, args.model), host=args.host, port=args.port, log_level="warning")
    return 0


def _calibration_faces(data_path: str | None, count: int = 4096, seed: int = 0):
    """`count` training faces of the data, drawn with `seed`: the int8 activation ranges."""
    import numpy as np

    from ferkit.data import read_fer2013

    train = read_fer2013(data_path, progress=False).split("train").images
    if len(train) == 0:
        raise CommandError(f"{data_path or '$FER2013_PATH'} has no training faces to calibrate int8 with", NOT_FOUND)
    return train[np.random.default_rng(seed).choice(len(train), min(count, len(train)), replace=False)]
