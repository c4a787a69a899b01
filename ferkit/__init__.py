"""ferkit: facial-emotion recognition on FER2013.

The library core (data, models, training, metrics) is plain PyTorch / numpy /
PIL and never imports zenml or mlflow; `steps/` and `pipelines/` adapt it.
"""

from ferkit.data.labels import EMOTIONS, SPLITS

__all__ = ["EMOTIONS", "SPLITS"]
__version__ = "0.1.0"
