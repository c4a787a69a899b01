"""Does GAN oversampling help? The cpu config with and without it, on the same seeds.

    python tests/benchmarks/bench_gan.py [--data PATH] [--epochs 10] [--seeds 0,1] [--variants ...]
        [--trained-homes .ferkit/seeds] [--out tests/benchmarks/results/gan_ablation.json]

For each seed: the conditional GAN is trained with the cpu config's
`oversample_minority` settings (forced on), its faces are scored (FID / KID on a
real-trained judge's features, class agreement, nearest-neighbour copies), and the
cpu config's classifier is trained twice from that seed with the same shortened
budget: on the real training faces, and on them plus the synthetic ones. Class
weights follow the config's `compute_class_weights` step on the training faces each run
sees, as in the pipeline, so oversampling also lowers the weight of the oversampled class;
the optional `weights_matched` variant (`--variants without_gan,with_gan,weights_matched`)
trains on the real faces with the with_gan run's weights, to tell the two apart (it needs the
counts the GAN adds, not its faces, so alone it neither trains nor scores a generator: the GAN's
figures come with the with_gan run). Each run records its class
weights and is scored on PublicTest, which decides, and on PrivateTest, which is reported, with
flip views and the config's headline TTA. Runs are written as they finish; a rerun
skips the ones already measured with the same config, and a run cut short (a session ending)
continues from its last finished epoch. Generators are cached under
`<ferkit home>/bench/` (derived from FER2013: never committed).

At the config's full budget `without_gan` is the config itself, the run `make seeds` trains for
that seed: with `--trained-homes` the champion `make train` left in `seed<N>` there is scored
instead of training it again, once its recipe, its data and its class weights are shown to be
this run's (`bench_ablation.trained_row`); otherwise the run is trained here.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.bench_ablation import (  # noqa: E402 (after the sys.path line)
    open_table,
    run_row,
    same_training,
    settings,
    summarise,
    table_key,
    trained_row,
)
from tests.benchmarks.report import cpu_kind, machine, shown_path, write_report  # noqa: E402 (after the sys.path line)

VARIANTS = ("without_gan", "with_gan", "weights_matched")


def same_kind_as_its_pairs(out: Path, runs: list[dict], seed: int) -> None:
    """Refuse, before any training, a run of `seed` on another kind of CPU than the runs of that seed
    already in the table: the same seed trains another model there, and the variants pair by seed."""
    here = cpu_kind(machine())
    there = {cpu_kind(r["machine"]) for r in runs if r["seed"] == seed and r.get("machine")}
    if there and here not in there:
        raise SystemExit(
            f"{shown_path(out)}: seed {seed}'s runs trained on {', '.join(sorted(there))}; this machine is "
            f"{here}, which trains another model from the same seed, and with_gan pairs with its controls "
            "by seed: run this seed on that kind of CPU, or start another table (--out)"
        )


def generator_cache(folder: Path, over) -> Path:
    """Where the generator of `over` (an OversampleConfig) is cached: keyed on its settings and on
    the precision `auto` resolves to here, so a generator trained in fp32 on another kind of
    machine is not reused where this one trains in bf16."""
    from ferkit.runtime import resolve_precision

    trained_as = over.model_dump_json() + resolve_precision(over.gan.precision, over.gan.device)
    return folder / f"generator-{hashlib.sha256(trained_as.encode()).hexdigest()[:16]}.pt"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="FER2013 archive (default: $FER2013_PATH)")
    parser.add_argument("--config", default=str(ROOT / "configs/cpu.yaml"))
    parser.add_argument("--epochs", type=int, default=10, help="shared budget per run (the cpu config has 36)")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--variants", default="without_gan,with_gan", help=f"comma-separated subset of {VARIANTS}")
    parser.add_argument("--out", default=None, help="default tests/benchmarks/results/gan-<epochs>-epochs.json")
    parser.add_argument(
        "--trained-homes",
        default=None,
        help="`make seeds` homes (seed<N> under here): a without_gan run `make train` already trained there "
        "is scored, not trained again",
    )
    args = parser.parse_args(argv)

    import numpy as np

    from ferkit.data import EMOTIONS, read_fer2013
    from ferkit.data.readers import resolve_data_path
    from ferkit.data.weights import class_weights
    from ferkit.gan.oversample import (
        OversampleConfig,
        TrainedGenerator,
        add_synthetic,
        fit_generator,
        plan_synthetic,
        real_training_faces,
        synthesize,
        synthetic_labels,
    )
    from ferkit.gan.quality import QualityConfig, assess, train_judge
    from ferkit.home import ferkit_home

    steps = yaml.safe_load(Path(args.config).read_text())["steps"]
    train_raw, weight_params, tta = settings(args.config)
    modes = tuple(dict.fromkeys(("flip", tta)))
    if len(train_raw.get("phases", [])) != 1:
        raise SystemExit(f"{args.config}: the benchmark shortens a single-phase config")
    train_raw["phases"][0]["epochs"] = args.epochs
    train_raw.pop("deadline", None)  # with_gan's longer epochs would be cut more than the controls'
    over_params = steps["oversample_minority"]["parameters"]
    quality_config = QualityConfig(**over_params.get("quality", {}))
    data_path = str(resolve_data_path(args.data))
    data = read_fer2013(data_path, progress=False)

    out = Path(args.out or ROOT / f"tests/benchmarks/results/gan-{args.epochs}-epochs.json")
    table = table_key(args.config, args.epochs, modes, weight_params, train_raw)
    runs = open_table(out, table)
    quality = dict(json.loads(out.read_text())["results"].get("gan", {})) if out.is_file() else {}
    judge = None
    generators = ferkit_home() / "bench"

    def save(plan: dict) -> None:
        """Write the table: after each run, and once a seed's GAN is scored (so that is kept too)."""
        write_report(
            "gan_ablation",
            out,
            targets={},
            checks={},
            results={
                "table": table,
                "budget_epochs": args.epochs,
                "modes": list(modes),
                "class_weights": weight_params,
                "runs": runs,
                "gan": quality,
                # with_gan against each control: minus_without_gan, minus_weights_matched
                "summary": summarise(runs, "variant", modes, baseline="without_gan"),
                "summary_against_weights_matched": summarise(runs, "variant", modes, baseline="weights_matched"),
            },
            config=shown_path(args.config),
            note=(
                f"each run trains {args.epochs} of the cpu config's epochs; with_gan adds the GAN's faces "
                f"for {plan} to train; PublicTest decides, PrivateTest is reported; views: {', '.join(modes)}"
            ),
        )

    wanted = args.variants.split(",")
    for variant in wanted:
        if variant not in VARIANTS:
            raise SystemExit(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    for seed in [int(s) for s in args.seeds.split(",")]:
        over = OversampleConfig(**{**over_params["config"], "enabled": True, "seed": seed})
        over.gan.seed = seed
        plan = plan_synthetic(real_training_faces(data).class_counts(), over)
        config_dict = {**copy.deepcopy(train_raw), "seed": seed}
        keys = {
            variant: {
                "variant": variant,
                "seed": seed,
                "config": config_dict,
                "gan": over.model_dump(mode="json") if variant != "without_gan" else None,
            }
            for variant in wanted
        }
        todo = [
            v
            for v in wanted
            if not any(
                same_training(r["config"], config_dict)
                and all(r.get(k) == x for k, x in keys[v].items() if k != "config")
                for r in runs
            )
        ]
        if todo:
            same_kind_as_its_pairs(out, runs, seed)
        # The generator makes the with_gan run's faces and is scored with it, once per seed; the
        # weight-matched control needs only the counts its plan adds, so alone it trains no GAN.
        generator = None
        if "with_gan" in todo or ("with_gan" in wanted and str(seed) not in quality):
            cache = generator_cache(generators, over)
            if cache.is_file():
                generator = TrainedGenerator.load(cache)
            else:
                print(f"== GAN, seed {seed}", flush=True)
                generator = fit_generator(data, over.gan)
                generators.mkdir(parents=True, exist_ok=True)
                generator.save(cache)
            if str(seed) not in quality:
                judge = judge or train_judge(data, quality_config)
                result = assess(generator, data, quality_config, emotions=tuple(plan), judge=judge)
                quality[str(seed)] = {
                    "train_seconds": round(generator.seconds, 1),
                    "steps": over.gan.steps,
                    "added": plan,
                    **result.report,
                }
                save(plan)
        real = data.split("train").labels
        oversampled_labels = np.concatenate([real, synthetic_labels(plan)])
        # weights_matched: the real faces with the with_gan run's class weights, so the synthetic
        # faces are the only difference (oversampling also lowers the class weight of disgust).
        oversampled = add_synthetic(data, *synthesize(generator, plan, seed=over.seed)) if "with_gan" in todo else None
        variants = {
            "without_gan": (data, real),
            "with_gan": (oversampled, oversampled_labels),
            "weights_matched": (data, oversampled_labels),
        }
        for variant in todo:
            dataset, weighted_by = variants[variant]
            weights = class_weights(weighted_by, **weight_params).as_list()
            print(f"== {variant}, seed {seed}, {args.epochs} epochs", flush=True)
            start = time.perf_counter()
            row = None
            if variant == "without_gan" and args.trained_homes:
                home = Path(args.trained_homes) / f"seed{seed}"
                row = trained_row(variant, home, config_dict, data, weights, modes, data_path)
            row = row or run_row(variant, config_dict, dataset, weights, modes)
            row.update(
                keys[variant],
                wall_seconds=round(time.perf_counter() - start, 1),
                train_images=int(dataset.split_mask("train").sum()),
                synthetic_images=int(dataset.synthetic.sum()),
                class_weights=dict(zip(EMOTIONS, weights)),
            )
            runs = [r for r in runs if not (r["variant"] == variant and r["seed"] == seed)] + [row]
            runs.sort(key=lambda r: (r["seed"], VARIANTS.index(r["variant"])))
            save(plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
