"""ferkit: facial-emotion recognition on FER2013.

The library core (data, models, training, metrics) is plain PyTorch / numpy /
PIL and never imports zenml or mlflow; `steps/` and `pipelines/` adapt it.
"""

from importlib.metadata import PackageNotFoundError, version

from ferkit.data.labels import EMOTIONS, SPLITS

try:
    __version__ = version("ferkit")  # pyproject.toml holds the one definition
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["EMOTIONS", "SPLITS"]
