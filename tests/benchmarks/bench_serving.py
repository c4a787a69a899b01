"""Serving benchmark: the registered pyfunc under a real `mlflow models serve`, loaded by client threads.

    python tests/benchmarks/bench_serving.py [--clients 4] [--batch 1 32] [--seconds 60] [--workers 1]

The model is the architecture that `configs/cpu.yaml` trains (train_model's `architecture` and
`architecture_kwargs`, with its resolved training config as the recipe, so the server applies the
same test-time augmentation as a trained champion), built with random weights (seed 0): the cost
of inference does not depend on the values of the weights, so no data or training is needed. It
is logged and registered with `log_and_register` in a temporary SQLite tracking store and served
with `--env-manager local` on 127.0.0.1 only (`tests/serving.py`).

Each phase (one per `--batch`) runs `--clients` threads for `--seconds`, or until `--max-requests`
requests, whichever comes first; each thread keeps one HTTP connection and loops: POST one request
of `batch` base64 PNG faces (48x48, `tests.factories.face`), wait for the answer, record the
latency. A few warm-up requests per phase are not counted. Clients and server share this
machine's cores, so the figures are those of one small box doing both.

Errors (a non-200 status, a failed or timed-out request, a wrong number of predictions, or a row
whose `error` is not empty) should be zero; the exit code is 0 only when they are.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/cpu.yaml"
TARGETS = {"errors": 0}
POOL = 256  # distinct faces the requests cycle through


def model_from_config(config_path: Path):
    """(TrainedModel with random weights, parameter count) for the architecture `config_path` trains."""
    import torch
    import yaml

    from ferkit.models import TrainedModel, build_model
    from ferkit.training.config import TrainConfig

    config = yaml.safe_load(config_path.read_text())["steps"]["train_model"]["parameters"]["config"]
    recipe = TrainConfig(**config).model_dump(mode="json")  # what training stores in the checkpoint
    architecture, kwargs = recipe["architecture"], dict(recipe["architecture_kwargs"])
    if "weights" in kwargs:
        kwargs["weights"] = "none"  # no downloads; the weights are random anyway
    torch.manual_seed(0)
    network = build_model(architecture, **kwargs)
    trained = TrainedModel(architecture, kwargs, network.state_dict(), recipe={**recipe, "architecture_kwargs": kwargs})
    return trained, sum(p.numel() for p in network.parameters())


def png_b64(pixels) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def bodies(faces: list[str], batch: int, count: int) -> list[bytes]:
    """`count` request bodies of `batch` faces each, cycling through `faces`."""
    out = []
    for i in range(count):
        rows = [[faces[(i * batch + j) % len(faces)]] for j in range(batch)]
        out.append(json.dumps({"dataframe_split": {"columns": ["image"], "data": rows}}).encode())
    return out


class Client:
    """One keep-alive HTTP connection to 127.0.0.1:port."""

    def __init__(self, port: int, timeout: float):
        self.port, self.timeout, self.connection = port, timeout, None

    def post(self, body: bytes) -> tuple[int, bytes]:
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self.connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
            response = self.connection.getresponse()
            return response.status, response.read()
        except Exception:
            self.close()  # a fresh connection for the next request
            raise

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def check(status: int, text: bytes, batch: int) -> str:
    """'' when the answer is right, else what is wrong with it."""
    if status != 200:
        return f"HTTP {status}: {text[:300].decode(errors='replace')}"
    try:
        predictions = json.loads(text)["predictions"]
    except (ValueError, KeyError, TypeError) as error:
        return f"unreadable answer ({error}): {text[:300].decode(errors='replace')}"
    if len(predictions) != batch:
        return f"{len(predictions)} predictions for {batch} faces"
    bad = [p.get("error") or "label missing" for p in predictions if p.get("error") or p.get("label") is None]
    return f"{len(bad)} row(s) with an error, e.g. {bad[0]!r}" if bad else ""


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil(n * q / 100)
    return sorted_values[int(rank) - 1]


def run_phase(port: int, payloads: list[bytes], batch: int, args, server_rss) -> dict:
    """`args.clients` threads posting `payloads` for `args.seconds` or `args.max_requests` requests."""
    clients = [Client(port, args.request_timeout) for _ in range(args.clients)]
    for i in range(args.warmup):  # not counted; also opens each client's connection
        client = clients[i % len(clients)]
        status, text = client.post(payloads[i % len(payloads)])
        if problem := check(status, text, batch):
            raise RuntimeError(f"warm-up request failed: {problem}")
    lock = threading.Lock()
    issued = 0
    latencies: list[list[float]] = [[] for _ in clients]
    errors: list[str] = []
    finished = [0.0] * len(clients)
    start_barrier = threading.Barrier(len(clients) + 1)

    def loop(k: int) -> None:
        nonlocal issued
        client, mine, i = clients[k], latencies[k], k
        start_barrier.wait()
        while time.perf_counter() < deadline:
            with lock:
                if issued >= args.max_requests:
                    break
                issued += 1
            body = payloads[i % len(payloads)]
            i += len(clients)
            sent = time.perf_counter()
            try:
                status, text = client.post(body)
                problem = check(status, text, batch)
            except Exception as error:  # timeouts, resets: counted, and the client goes on
                problem = f"{type(error).__name__}: {error}"
            mine.append(time.perf_counter() - sent)
            if problem:
                with lock:
                    errors.append(problem)
        finished[k] = time.perf_counter()
        client.close()

    threads = [threading.Thread(target=loop, args=(k,), daemon=True) for k in range(len(clients))]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    deadline = start + args.seconds
    busy_before, ours_before = cpu_seconds()
    start_barrier.wait()
    rss_peak = 0
    while any(t.is_alive() for t in threads):
        rss_peak = max(rss_peak, server_rss())
        for thread in threads:
            thread.join(timeout=1.0)
    elapsed = max(finished) - start
    busy_after, ours_after = cpu_seconds()
    busy, ours = busy_after - busy_before, ours_after - ours_before
    all_ms = sorted(1000 * x for mine in latencies for x in mine)
    requests = len(all_ms)
    result = {
        "clients": args.clients,
        "batch": batch,
        "seconds": round(elapsed, 2),
        "requests": requests,
        "faces": requests * batch,
        "requests_per_second": round(requests / elapsed, 2),
        "faces_per_second": round(requests * batch / elapsed, 1),
        "latency_ms": {
            "p50": round(percentile(all_ms, 50), 1),
            "p90": round(percentile(all_ms, 90), 1),
            "p99": round(percentile(all_ms, 99), 1),
            "max": round(all_ms[-1], 1) if all_ms else None,
            "mean": round(statistics.fmean(all_ms), 1) if all_ms else None,
        },
        "requests_per_client": [len(mine) for mine in latencies],
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "stopped_by": "max_requests" if issued >= args.max_requests else "seconds",
        "server_rss_peak_mib": round(rss_peak / 2**20, 1),
        "cpu": {
            "machine_busy_fraction": round(busy / (elapsed * (os.cpu_count() or 1)), 3),
            "benchmark_cpu_seconds": round(ours, 1),
            "other_processes_cpu_seconds": round(max(0.0, busy - ours), 1),
        },
    }
    print(
        f"batch {batch:>3}, {args.clients} clients: {requests} requests in {elapsed:.1f} s, "
        f"{result['requests_per_second']} req/s, {result['faces_per_second']} faces/s, "
        f"p50 {result['latency_ms']['p50']} ms, p99 {result['latency_ms']['p99']} ms, errors {len(errors)}; "
        f"other processes used {result['cpu']['other_processes_cpu_seconds']} CPU s",
        flush=True,
    )
    return result


def server_memory_probe():
    """A function giving the resident memory (bytes) of every process this one started, 0 without psutil."""
    try:
        import psutil
    except ImportError:
        return lambda: 0
    me = psutil.Process()

    def rss() -> int:
        total = 0
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total

    return rss


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds the whole machine has been busy, CPU seconds of this process and its children);
    (0, 0) without psutil. Their differences over a phase tell whether something else competed for the cores."""
    try:
        import psutil
    except ImportError:
        return 0.0, 0.0
    times = psutil.cpu_times()
    busy = sum(getattr(times, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq"))  # not steal, guest
    me = psutil.Process()
    ours = 0.0
    for process in (me, *me.children(recursive=True)):
        try:
            t = process.cpu_times()
            ours += t.user + t.system
        except psutil.Error:
            pass
    return busy, ours


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32], help="faces per request, one phase each")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase (default 60)")
    parser.add_argument("--max-requests", type=int, default=100_000, help="cap on requests per phase")
    parser.add_argument("--warmup", type=int, default=8, help="uncounted requests before each phase")
    parser.add_argument("--workers", type=int, default=1, help="server workers, `mlflow models serve -w`")
    parser.add_argument("--request-timeout", type=float, default=60.0, help="client timeout per request, seconds")
    parser.add_argument("--server-timeout", type=float, default=300.0, help="seconds for the server to come up")
    parser.add_argument("--config", default=str(CONFIG), help="training config whose architecture is served")
    parser.add_argument("--out", default=str(ROOT / "tests/benchmarks/results/serving.json"))
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.max_requests < 1 or min(args.batch) < 1:
        parser.error("--clients, --seconds, --max-requests and --batch must be positive")
    os.environ.setdefault("ZENML_CONFIG_PATH", str(ROOT / ".ferkit/zenml"))
    sys.path.insert(0, str(ROOT))

    import mlflow
    import numpy as np
    import torch

    from ferkit.data import EMOTIONS
    from ferkit.inference.predictor import Predictor
    from ferkit.registry.publish import log_and_register
    from tests.benchmarks.report import write_report
    from tests.factories import face
    from tests.serving import served_model

    trained, parameters = model_from_config(Path(args.config))
    faces = [face(seed) for seed in range(POOL)]
    encoded = [png_b64(f) for f in faces]
    reference = Predictor(trained).predict_proba(np.stack(faces[:4]))  # in process, to check the server's answers

    with tempfile.TemporaryDirectory(prefix="ferkit_serving_") as tmp:
        root = Path(tmp)
        uri = f"sqlite:///{root}/mlflow.db"
        mlflow.set_tracking_uri(uri)
        mlflow.MlflowClient().create_experiment("serve", artifact_location=(root / "artifacts").as_uri())
        mlflow.set_experiment("serve")
        with mlflow.start_run():
            version = log_and_register(trained, "fer_serving_bench")
        mlflow.set_tracking_uri("")

        started = time.perf_counter()
        with served_model(
            f"models:/fer_serving_bench/{version}", uri, root, workers=args.workers, timeout=args.server_timeout
        ) as url:
            start_seconds = time.perf_counter() - started
            port = int(url.rsplit(":", 1)[1])
            print(f"server up on {url} after {start_seconds:.1f} s", flush=True)
            server_rss = server_memory_probe()
            idle_rss = server_rss()

            status, text = Client(port, args.request_timeout).post(bodies(encoded[:4], 4, 1)[0])
            if problem := check(status, text, 4):
                raise RuntimeError(f"the first request failed: {problem}")
            served = np.array([[p[e] for e in EMOTIONS] for p in json.loads(text)["predictions"]])
            max_difference = float(np.abs(served - reference).max())

            phases = []
            for batch in args.batch:
                payloads = bodies(encoded, batch, max(1, min(64, POOL // batch)))
                phases.append(run_phase(port, payloads, batch, args, server_rss))
        log_text = (root / "server.log").read_text(errors="replace")

    total_errors = sum(p["errors"] for p in phases)
    results = {
        "server_start_seconds": round(start_seconds, 1),
        "server_start_note": "from launching `mlflow models serve` until /ping answers, polled every 0.5 s",
        "server_workers": args.workers,
        "server_rss_idle_mib": round(idle_rss / 2**20, 1),
        "served_matches_in_process": max_difference < 1e-4,
        "served_vs_in_process_max_abs_difference": max_difference,
        "phases": phases,
        "errors": total_errors,
        "server_log_tracebacks": log_text.count("Traceback"),
    }
    return write_report(
        "serving",
        args.out,
        TARGETS,
        results,
        {"errors": total_errors == 0 and results["server_log_tracebacks"] == 0},
        model={
            "config": str(Path(args.config).resolve().relative_to(ROOT)),
            "architecture": trained.architecture,
            "architecture_kwargs": trained.architecture_kwargs,
            "parameters": parameters,
            "tta": Predictor(trained).mode,
            "weights": "random (torch.manual_seed(0)): inference costs the same as with trained weights",
        },
        load={
            "clients": args.clients,
            "batches": args.batch,
            "seconds_per_phase": args.seconds,
            "max_requests_per_phase": args.max_requests,
            "warmup_requests_per_phase": args.warmup,
            "faces": f"{POOL} distinct 48x48 PNGs (tests.factories.face), base64 in dataframe_split `image`",
            "transport": "one keep-alive HTTP/1.1 connection per client thread, 127.0.0.1 only",
            "note": "clients and server share this machine's cores; each phase's `cpu` says how much "
            "CPU time other processes took meanwhile (near 0 for a clean measurement)",
        },
        torch={
            "version": torch.__version__,
            "intra_op_threads": torch.get_num_threads(),
            "inter_op_threads": torch.get_num_interop_threads(),
            "threads_note": "of this process; the server inherits the same environment and defaults",
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"),
        },
        mlflow=mlflow.__version__,
    )


if __name__ == "__main__":
    sys.exit(main())
