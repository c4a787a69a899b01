"""The library core stays free of zenml and mlflow (STYLE.md: imports point one way)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["ferkit", "ferkit.data", "ferkit.models", "ferkit.training", "ferkit.metrics", "ferkit.quality", "ferkit.cli",
                                    "ferkit.retraining", "ferkit.cluster", "ferkit.training.distributed",
                                    "ferkit.gan", "ferkit.gan.oversample", "ferkit.gan.quality"])
def test_core_imports_without_zenml_or_mlflow(module):
    code = (
        f"import sys, {module}; "
        "bad = [m for m in ('zenml', 'mlflow') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
