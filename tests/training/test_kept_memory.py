"""Freed memory is kept for reuse: no page faults for each step's fresh activations."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

# A training step's pattern in miniature: 64 MB tensors (over glibc's 32 MB mmap ceiling) made
# from one another and freed, repeated; prints the minor page faults of ten repeats after ten to
# settle in. `{setup}` is what runs first.
PROBE = textwrap.dedent(
    """
    import resource, torch
    {setup}
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


KEEP = "from ferkit.runtime import keep_freed_memory; print(keep_freed_memory())"
# Building a checkpoint's network for prediction applies it too.
BUILD = """
from ferkit.models import TrainedModel, build_model
net = build_model("plain_cnn")
TrainedModel("plain_cnn", {}, net.state_dict()).build()
print(True)
"""


def faults(setup: str, keep: bool = True) -> tuple[bool, int]:
    env = {**os.environ, "FERKIT_KEEP_FREED_MEMORY": "1" if keep else "0"}
    probe = PROBE.format(setup=setup)
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    applied, count = out.split()[-2:]
    return applied == "True", int(count)


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")


def test_kept_memory_is_reused_without_page_faults():
    applied, kept = faults(KEEP)
    off, default = faults(KEEP, keep=False)
    assert applied and not off
    # Default glibc maps each 64 MB block afresh: 16,384 pages faulted in per allocation.
    assert default > 10 * 3 * 16_000
    assert kept < default / 100


def test_building_a_checkpoint_s_network_keeps_memory():
    _, built = faults(BUILD)
    _, default = faults(BUILD, keep=False)
    assert built < default / 100
