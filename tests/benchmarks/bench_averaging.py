"""Weight averaging compared on one training: EMAs of several decays and SWA over the schedule's tail.

    python tests/benchmarks/bench_averaging.py [--config configs/cpu.yaml] [--seeds 0,1] [--data PATH]
        [--decays 0.998,0.999,0.9995,0.9998] [--swa-epochs 6,12]
        [--out tests/benchmarks/results/averaging.json]

The config's training runs once per seed, seeded and built as `make train` builds it; every average
follows that one training, since none feeds back into the weights being trained. Their differences
are therefore paired, free of seed noise. The averages:

- `ema_<decay>`: an exponential moving average updated after every step, with the recipe's warm-up
  (`ferkit.models.ema`); the recipe's own decay is what `make train` ships.
- `swa_<n>`: the plain mean of the weights at the end of each of the last n epochs, its BatchNorm
  statistics recomputed over the training faces (Izmailov et al. 2018, on a one-cycle tail).
- `last`: the weights after the last epoch, no average.

Each is scored after the last epoch with the config's headline views and with flip, at the recipe's
precision, on PublicTest (where a choice is made) and PrivateTest (reported, never used to choose).
A seed already in the file for the same training and averages is kept; each finished seed is
written at once.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.bench_ablation import recipe_hash, settings  # noqa: E402 (after the sys.path line)
from tests.benchmarks.report import machine, shown_path, write_report  # noqa: E402

FIGURES = ("accuracy", "balanced_accuracy", "macro_f1", "log_loss")


class EveryDecay:
    """EMAs of several decays updated together after every step (what `EpochSetup.ema` is called with)."""

    def __init__(self, averages: dict[str, object]):
        self.averages = averages  # name -> torch.optim.swa_utils.AveragedModel

    def update_parameters(self, model) -> None:
        for average in self.averages.values():
            average.update_parameters(model)


def recompute_batchnorm(model, images, config, batch_size: int = 256) -> None:
    """BatchNorm running statistics of `model` measured afresh over `images` (uint8, N x 48 x 48) as
    the network sees them in training (unaugmented, at the recipe's precision): the equal-weight mean
    over all batches, as torch's `update_bn` does."""
    import torch
    from torch import nn

    from ferkit.models.predict import to_input

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = {m: m.momentum for m in norms}
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative mean
    device = next(model.parameters()).device
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    was_training = model.training
    model.train()
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = to_input(images[start : start + batch_size]).to(device).contiguous(memory_format=memory_format)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
                model(x)
    for m, momentum in momenta.items():
        m.momentum = momentum
    model.train(was_training)


def score(state_dict: dict, config, data, modes: tuple[str, ...]) -> dict:
    """{split: {mode: figures with fear and disgust recall}} of these weights as `evaluate` scores a
    checkpoint: built as saved (eval mode, channels_last), at the recipe's precision."""
    from ferkit.data.labels import EMOTIONS
    from ferkit.metrics.classification import classification_metrics
    from ferkit.models.checkpoint import TrainedModel
    from ferkit.models.predict import predict_proba_modes

    network = TrainedModel(config.architecture, dict(config.architecture_kwargs), state_dict).build()
    out: dict = {}
    for split in ("val", "test"):
        part = data.split(split)
        out[split] = {}
        for mode, probs in predict_proba_modes(network, part.images, modes, bf16=config.bf16).items():
            figures = {k: round(float(v), 6) for k, v in classification_metrics(part.labels, probs).items()}
            predicted = probs.argmax(1)
            for emotion in ("disgust", "fear"):
                shown = part.labels == EMOTIONS.index(emotion)
                figures[f"{emotion}_recall"] = round(float((predicted[shown] == EMOTIONS.index(emotion)).mean()), 6)
            out[split][mode] = figures
    return out


def train_with_averages(config, data, weights, decays: tuple[float, ...], swa_epochs: tuple[int, ...]) -> dict:
    """Train `config` on `data`'s train split as `fit` does (all its epochs: the averages are compared
    after the last) and return {average name: state_dict}, with `seconds`."""
    from tqdm.auto import tqdm

    from ferkit.models import build_model
    from ferkit.models.ema import model_ema
    from ferkit.runtime import seed_everything
    from ferkit.training.epoch import make_optimizer, set_trainable, train_one_epoch
    from ferkit.training.loop import prepare_epochs

    train = data.split("train")
    seed_everything(config.seed)  # the initial weights belong to the seeded run, as in `train`
    model = build_model(config.architecture, **config.architecture_kwargs)
    setup = prepare_epochs(model, train.images, train.labels, config, weights)
    own = f"ema_{config.ema_decay:g}"
    emas = {f"ema_{d:g}": model_ema(setup.model, d) for d in decays if f"ema_{d:g}" != own}
    if setup.ema is not None:
        emas[own] = setup.ema
    setup.ema = EveryDecay(emas)
    steps = -(-int(setup.repeats[setup.labels].sum()) // config.batch_size)
    if config.max_batches_per_epoch is not None:
        steps = min(steps, config.max_batches_per_epoch)
    keep = max(swa_epochs, default=0)
    ends: list[dict] = []  # the weights after each of the last `keep` epochs
    start, epoch = time.perf_counter(), 0
    bar = tqdm(total=config.total_epochs, desc="training", unit="epoch")
    for phase in config.resolved_phases():
        params = set_trainable(setup.model, phase.trainable, phase.name)
        optimizer, scheduler = make_optimizer(params, phase, config.weight_decay, phase.epochs * steps)
        for index in range(phase.epochs):
            desc = f"{phase.name} {index + 1}/{phase.epochs}"
            setup.distill_share = config.distill_share(epoch)  # self-distillation's blend, as `fit` sets it
            metrics = train_one_epoch(setup, optimizer, scheduler, desc, setup.model, config.train_size(epoch))
            epoch += 1
            ends = [*ends, {k: v.detach().clone() for k, v in setup.model.state_dict().items()}][-keep:] if keep else []
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['train.loss']:.3f}")
    bar.close()
    seconds = time.perf_counter() - start
    out = {name: copy.deepcopy(average.module.state_dict()) for name, average in sorted(emas.items())}
    for n in sorted(swa_epochs):
        if n > len(ends):
            raise ValueError(f"swa over the last {n} epochs needs {n} epochs; the config trains {len(ends)}")
        tail = ends[-n:]
        mean = {
            k: (sum(s[k].float() for s in tail) / n).to(v.dtype) if v.is_floating_point() else v.clone()
            for k, v in tail[-1].items()
        }
        setup.model.load_state_dict(mean)
        recompute_batchnorm(setup.model, train.images, config)
        out[f"swa_{n}"] = copy.deepcopy(setup.model.state_dict())
    out["last"] = ends[-1] if ends else copy.deepcopy(setup.model.state_dict())
    return {"weights": out, "seconds": seconds}


def run_seed(config, data, weights, decays, swa_epochs, modes) -> dict:
    """One seed's row: every average's scores, and the seconds training and scoring took."""
    trained = train_with_averages(config, data, weights, decays, swa_epochs)
    start = time.perf_counter()
    scores = {name: score(state, config, data, modes) for name, state in trained["weights"].items()}
    return {
        "seed": config.seed,
        "epochs": config.total_epochs,
        "train_seconds": round(trained["seconds"], 1),
        "score_seconds": round(time.perf_counter() - start, 1),
        "averages": scores,
        "machine": machine(),
    }


def gains(rows: list[dict], baseline: str, mode: str) -> dict:
    """Per average, its PublicTest and PrivateTest figures less the baseline's in the same training:
    each seed's difference and their mean."""
    out: dict = {}
    for name in rows[0]["averages"] if rows else ():
        out[name] = {}
        for split in ("val", "test"):
            per_seed = {
                figure: [r["averages"][name][split][mode][figure] - r["averages"][baseline][split][mode][figure]
                         for r in rows]
                for figure in (*FIGURES, "fear_recall", "disgust_recall")
            }  # fmt: skip
            out[name][split] = {
                figure: {"per_seed": [round(d, 6) for d in ds], "mean": round(sum(ds) / len(ds), 6)}
                for figure, ds in per_seed.items()
            }
    return out


def numbers(text: str, kind: type) -> tuple:
    return tuple(kind(part) for part in text.split(",") if part.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs/cpu.yaml"))
    parser.add_argument("--seeds", default="0,1", help="comma-separated training seeds")
    parser.add_argument("--data", default=None, help="FER2013 archive (default: $FER2013_PATH)")
    parser.add_argument("--decays", default="0.998,0.999,0.9995,0.9998", help="EMA decays, comma-separated")
    parser.add_argument("--swa-epochs", default="6,12", help="SWA over the last n epochs, comma-separated")
    parser.add_argument("--out", default=str(ROOT / "tests/benchmarks/results/averaging.json"))
    args = parser.parse_args(argv)

    from ferkit.data import read_fer2013
    from ferkit.data.weights import class_weights
    from ferkit.training import TrainConfig

    train, weight_params, headline = settings(args.config)
    decays, swa_epochs = numbers(args.decays, float), numbers(args.swa_epochs, int)
    base = TrainConfig(**train)
    if base.ema_decay is None:
        raise SystemExit(f"{args.config}: the recipe keeps no EMA (ema_decay); nothing to compare the averages with")
    modes = tuple(dict.fromkeys(("flip", headline)))
    key = {
        "config": shown_path(args.config),
        "recipe": recipe_hash(train),
        "precision": base.concrete_precision,
        "class_weights": weight_params,
        "decays": list(decays),
        "swa_epochs": list(swa_epochs),
        "modes": list(modes),
    }
    out = Path(args.out)
    old = json.loads(out.read_text()) if out.is_file() else None
    rows = old["results"]["rows"] if old and old.get("table") == key else []
    data = read_fer2013(args.data, progress=False)
    weights = class_weights(data.split("train").labels, **weight_params).as_list()
    baseline = f"ema_{base.ema_decay:g}"

    def report() -> int:
        ordered = sorted(rows, key=lambda r: r["seed"])
        return write_report(
            "averaging",
            out,
            targets={},
            results={"rows": ordered, "gains": {m: gains(ordered, baseline, m) for m in modes}},
            checks={},
            table=key,
            baseline=baseline,
            note="averages of one training per seed, after its last epoch; PublicTest chooses, PrivateTest reported",
        )

    for seed in numbers(args.seeds, int):
        if any(r["seed"] == seed for r in rows):
            print(f"seed {seed}: already in {out}, kept", flush=True)
            continue
        config = TrainConfig(**{**train, "seed": seed})
        print(f"== seed {seed}: {config.total_epochs} epochs, averages {', '.join(map(str, decays))} "
              f"(EMA) and the last {', '.join(map(str, swa_epochs))} epochs (SWA)", flush=True)  # fmt: skip
        rows.append(run_seed(config, data, weights, decays, swa_epochs, modes))
        report()
    return report()


if __name__ == "__main__":
    sys.exit(main())
