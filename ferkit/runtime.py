"""Where and how quietly work runs: the device, the seeds, the progress bars."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

PROGRESS_ENV = "FERKIT_NO_PROGRESS"  # "1" silences the progress bars (tests, CI logs, cron)


def progress_disabled() -> bool:
    return os.environ.get(PROGRESS_ENV) == "1"


def resolve_device(name: str) -> torch.device:
    """ "auto": CUDA when available, else the CPU; any other name as torch spells it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; returns a torch generator seeded the same."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
