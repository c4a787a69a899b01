"""The `fer_emotion` MLflow pyfunc, logged as a model from code.

Input: a DataFrame with, per row, either `image` (encoded image bytes: PNG, JPEG, ... of
any size and mode; base64 over REST) or `pixels` (a 2-D grayscale array, whole numbers
0-255, or numbers in [0, 1] when the row's `pixel_range` is "0-1"). Both are converted to
48x48 grayscale the way ingestion converts, within the same read limits.

Output: a DataFrame with `label`, `confidence` (the label's probability), `uncertain`
(confidence under `min_confidence`), one probability column per emotion in `EMOTIONS`
order, and `error`: empty when the row was predicted, else what is wrong with that row (the
other columns are then empty). Probabilities are calibrated with the temperature fitted on
val that the checkpoint carries; the request's params `raw: true` returns the network's
own, `min_confidence` moves the threshold. A request malformed as a whole is answered with HTTP
400 and one message, never a traceback. The ferkit checkpoint inside the model carries the
label order and preprocessing.
"""

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel


class FERPyfunc(PythonModel):
    def load_context(self, context) -> None:
        from ferkit.data.images import ReadLimits
        from ferkit.inference.predictor import Predictor
        from ferkit.models import TrainedModel

        self.predictor = Predictor(TrainedModel.load(context.artifacts["checkpoint"]))
        self.limits = ReadLimits.from_env()

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from ferkit.inference.rows import RequestError, predict_rows

        try:
            return predict_rows(self.predictor, model_input, self.limits, params)
        except RequestError as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        except Exception as exc:  # a bug, not bad input: say what, keep the traceback in the server's log
            import logging

            logging.getLogger(__name__).exception("prediction failed")
            raise MlflowException(
                f"prediction failed: {type(exc).__name__}: {exc}", error_code=INTERNAL_ERROR
            ) from None


mlflow.models.set_model(FERPyfunc())
