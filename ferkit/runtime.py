"""Where and how quietly work runs: the device, the seeds, the progress bars.

torch loads only in the functions that need it: `ferkit info` asks whether to show progress
and should not pay 600 MB and seconds of start-up for the answer.
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

PROGRESS_ENV = "FERKIT_NO_PROGRESS"  # "1" silences the progress bars (tests, CI logs, cron)


def progress_disabled() -> bool:
    return os.environ.get(PROGRESS_ENV) == "1"


def resolve_device(name: str) -> torch.device:
    """ "auto": CUDA when available, else the CPU; any other name as torch spells it."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; returns a torch generator seeded the same."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
