"""Freed memory is kept for reuse: no page faults for each step's or batch's fresh tensors."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from ferkit.runtime import KEEP_FREED_MEMORY_ENV

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")

# A training step's pattern in miniature: 64 MB tensors (over glibc's 32 MB mmap ceiling) made
# from one another and freed, ten times after ten to settle in; prints the minor page faults.
STEPS = textwrap.dedent(
    """
    import resource, torch
    from ferkit.runtime import keep_freed_memory
    print(keep_freed_memory())
    def step():
        a = torch.ones(16 * 2**20)
        b = a * 2
        del a
        c = b + 1
        del b, c
    for _ in range(10):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)
# As `ferkit serve` predicts: a checkpoint's network (built by `TrainedModel.build`, which keeps
# memory) predicting batches of 256 faces in a worker thread, five after three to settle in.
SERVE = textwrap.dedent(
    """
    import resource, threading, torch, yaml
    from ferkit.models import TrainedModel, build_model
    train = yaml.safe_load(open("configs/cpu.yaml"))["steps"]["train_model"]["parameters"]["config"]
    kwargs = train["architecture_kwargs"]
    network = TrainedModel("hybrid", kwargs, build_model("hybrid", **kwargs).state_dict()).build()
    faces = torch.rand(256, 1, 48, 48)
    def predict():
        with torch.inference_mode():
            for _ in range(3):
                network(faces)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(5):
                network(faces)
            print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    worker = threading.Thread(target=predict)
    worker.start()
    worker.join()
    """
)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(probe: str, keep: bool) -> list[str]:
    env = {**os.environ, KEEP_FREED_MEMORY_ENV: "1" if keep else "0"}
    done = subprocess.run([sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_kept_memory_is_reused_without_page_faults():
    applied, kept = run(STEPS, keep=True)
    not_applied, default = run(STEPS, keep=False)
    assert applied == "True" and not_applied == "False"
    # Default glibc maps each 64 MB block afresh: 16,384 pages faulted in per block (32 where
    # transparent huge pages are always on), 30 blocks.
    assert int(default) >= 30 * 32
    # Kept: none once settled; a tenth leaves room for a late heap growth (other threads' small
    # allocations interleave with the blocks and can split a free one).
    assert int(kept) < int(default) / 10, (kept, default)


def test_a_checkpoint_predicting_in_a_worker_thread_keeps_memory():
    """A worker thread gets its own arena unless told otherwise: one arena for every thread."""
    (kept,) = run(SERVE, keep=True)
    (default,) = run(SERVE, keep=False)
    assert int(default) >= 5 * 100
    assert int(kept) < int(default) / 10, (kept, default)


# A large read inside `freed_memory_returned` hands its memory back; outside, a freed block stays held.
RETURNED = textwrap.dedent(
    """
    import numpy as np
    from ferkit.runtime import freed_memory_returned, keep_freed_memory
    def resident_mb():
        return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
    keep = keep_freed_memory()
    start = resident_mb()
    with freed_memory_returned(), freed_memory_returned():  # reentrant
        block = np.ones(64 * 2**20 // 8)  # 64 MB, touched
        del block
    inside = resident_mb()
    block = np.ones(64 * 2**20 // 8)
    del block
    print(keep, round(inside - start), round(resident_mb() - inside))
    """
)


def test_a_large_read_returns_its_memory_where_freed_memory_is_kept():
    """A 50-megapixel photo through `ferkit predict` kept 260 MB more of its buffers beside the
    model's once freed memory was kept; reading inside `freed_memory_returned` gives them back."""
    applied, returned, kept = run(RETURNED, keep=True)
    assert applied == "True"
    assert int(returned) < 16, returned  # handed back: the 64 MB block was mapped on its own
    assert int(kept) > 48, kept  # outside, as keep_freed_memory wants: held for reuse
    _, returned, not_kept = run(RETURNED, keep=False)
    assert int(returned) < 16 and int(not_kept) < 16  # glibc as it is returns both
