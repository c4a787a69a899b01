"""ferkit train | fresh-config | budget-config | compare: training outside a pipeline, from scratch,
within a time budget, or per backbone."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ferkit.cli.errors import FAILED, USAGE, CommandError, read_yaml, validated


def add_commands(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser("train", help="train without ZenML; data-parallel under torchrun")
    tr.add_argument("--config", required=True, help="pipeline config whose train_model step config to use")
    tr.add_argument("--data", default=None, help="data path (default: $FER2013_PATH)")
    tr.add_argument("--out", required=True, help="where rank 0 saves the trained checkpoint")
    tr.add_argument("--resume", help="resumable state file (written by rank 0 after every epoch)")
    tr.add_argument("--override", help="JSON of TrainConfig fields to override, e.g. '{\"epochs\": 1}'")
    tr.add_argument("--limit-per-class", type=int, help="read only the first N images of each class and split")
    tr.add_argument("--json", action="store_true", help="print each epoch's metrics as a JSON line")
    tr.set_defaults(func=_train)
    fr = sub.add_parser("fresh-config", help="a run config that trains from scratch: no cache, no resume state")
    fr.add_argument("config", help="run config, e.g. configs/cpu.yaml")
    fr.add_argument("-o", "--out", required=True, help="where to write the config with caching off")
    fr.add_argument("--resume-dir", help="resume folder to clear (default: the config's, else $FERKIT_RESUME_DIR)")
    fr.set_defaults(func=_fresh_config)
    bu = sub.add_parser("budget-config", help="a run config whose training fits a time budget: fewer epochs if need be")
    bu.add_argument("config", help="run config, e.g. configs/cpu.yaml")
    bu.add_argument("--minutes", type=float, required=True, help="wall-clock minutes the training step may take")
    bu.add_argument("-o", "--out", required=True, help="where to write the config with the budget")
    bu.set_defaults(func=_budget_config)
    cmp_ = sub.add_parser("compare", help="train several backbones, one fer_training run each, one experiment")
    cmp_.add_argument("spec", help="comparison YAML, e.g. configs/compare_backbones.yaml")
    cmp_.add_argument("--only", nargs="+", help="run just these rows (backbones, baselines) of the spec")
    cmp_.add_argument("--dry-run", action="store_true", help="print each run's train config, run nothing")
    cmp_.add_argument("--rerun", action="store_true", help="train rows again that have a finished run of their config")
    cmp_.add_argument("--report-only", action="store_true", help="train nothing; the table of the runs there are")
    cmp_.add_argument("--speed-faces", type=int, default=2048, help="faces each row's inference is timed on")
    cmp_.add_argument("--out", help="folder for comparison.md/.json/.png (default: <home>/comparisons/<spec name>)")
    cmp_.set_defaults(func=_compare)


def _train(args: argparse.Namespace) -> int:
    from ferkit.data import read_fer2013
    from ferkit.data.weights import class_weights
    from ferkit.runtime import progress_disabled
    from ferkit.training import TrainConfig, train
    from ferkit.training.distributed import init_from_env

    section = _train_section(read_yaml(args.config), args.config)
    try:
        overrides = json.loads(args.override) if args.override else {}
    except json.JSONDecodeError as exc:
        raise CommandError(f"--override is not JSON: {exc}", USAGE) from None
    config = validated(TrainConfig, {**section, **overrides}, f"{args.config}: steps.train_model.parameters.config")
    workers = init_from_env(config.device)
    data = read_fer2013(
        args.data, limit_per_class=args.limit_per_class, progress=workers.is_main and not progress_disabled()
    )
    log = (lambda epoch, m: print(json.dumps({"epoch": epoch, **m}), flush=True)) if args.json else None
    training = train(config, data, class_weights(data.split("train").labels).as_list(),
                     callbacks=[log] if log else [], checkpoint_path=args.resume)  # fmt: skip
    if workers.is_main:
        training.model.save(args.out)
        result = training.result
        print(
            f"ferkit train: {result.epochs_trained} epoch{'s' * (result.epochs_trained != 1)} ({result.ended_by}), "
            f"best epoch {result.best_epoch}, "
            f"val macro-F1 {result.best_val_macro_f1:.4f}, {workers.world_size} process(es), saved {args.out}"
        )
    return 0


def _train_section(raw: dict, path: str) -> dict:
    try:
        section = raw["steps"]["train_model"]["parameters"]["config"]
    except (KeyError, TypeError):
        section = None
    if not isinstance(section, dict):
        raise CommandError(f"{path} has no steps.train_model.parameters.config section", USAGE)
    return section


def _fresh_config(args: argparse.Namespace) -> int:
    """A run config that trains from scratch: caching off, and the resume states removed."""
    from ferkit.training.train import fresh_run_config

    out, removed, folder = fresh_run_config(read_yaml(args.config), args.out, args.resume_dir)
    where = f"{len(removed)} resume file(s) removed from {folder}" if folder else "no resume folder set"
    print(f"wrote {out} ({args.config} with caching off); {where}")
    return 0


def _budget_config(args: argparse.Namespace) -> int:
    """`config` with `time_budget_minutes` set in its train_model step: the training measures this
    machine's speed first and trains the configured epochs, or as many as fit."""
    import yaml

    from ferkit.files import atomic_write_text
    from ferkit.training import TrainConfig

    raw = read_yaml(args.config)
    section = {**_train_section(raw, args.config), "time_budget_minutes": args.minutes}
    validated(TrainConfig, section, f"--minutes {args.minutes:g}: {args.config}: steps.train_model.parameters.config")
    raw["steps"]["train_model"]["parameters"]["config"] = section
    out = atomic_write_text(args.out, yaml.safe_dump(raw, sort_keys=False))
    print(f"wrote {out} ({args.config} with its training within {args.minutes:g} minutes: fewer epochs if not all fit)")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from ferkit.comparison import comparison_configs, format_table, read_spec, run_comparison

    read_yaml(args.spec, "comparison spec")  # a missing or malformed spec is named first
    try:
        spec, configs = read_spec(args.spec), comparison_configs(args.spec)
    except (KeyError, TypeError, ValueError) as exc:
        raise CommandError(f"{args.spec}: {exc}", USAGE) from None
    if args.speed_faces < 1:
        raise CommandError(f"--speed-faces must be at least 1, got {args.speed_faces}", USAGE)
    chosen = args.only or list(configs)
    unknown = sorted(set(chosen) - set(configs))
    if unknown:
        raise CommandError(f"{unknown} not in {args.spec} (has {list(configs)})", USAGE)
    zenml = str(Path(sys.executable).parent / "zenml")
    if args.dry_run:
        run_comparison(configs, chosen, zenml, dry_run=True)
        return 0
    from ferkit.home import ferkit_home
    from ferkit.registry import comparison
    from ferkit.registry.store import use_stack_tracking

    use_stack_tracking()
    failed = []
    if not args.report_only:
        done = set() if args.rerun else set(comparison.finished_rows(configs, spec["registered_model_name"]))
        failed = run_comparison(configs, chosen, zenml, done=done)
    out = Path(args.out) if args.out else ferkit_home() / "comparisons" / Path(args.spec).stem
    rows, paths, warnings = comparison.report(args.spec, spec, configs, chosen, out, args.speed_faces)
    for warning in warnings:
        print(f"ferkit compare: {warning}", file=sys.stderr)
    if rows:
        print(format_table(rows))
        print(
            f"{', '.join(p.name for p in paths.values())} in {out} (and in MLflow, experiment {spec['experiment_name']})"
        )
    missing = [row for row in chosen if row not in {r["row"] for r in rows}]
    if failed or missing:
        print(f"ferkit compare: runs failed for {failed}; no finished run for {missing}", file=sys.stderr)
        return FAILED
    return 0
