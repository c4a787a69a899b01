"""The `fer_emotion` MLflow pyfunc, logged as a model from code.

Input: a DataFrame with one column `image` of encoded image bytes (PNG, JPEG,
... of any size and mode; converted to 48x48 grayscale the way ingestion
converts). Over REST the bytes travel base64-encoded. Output: a DataFrame with
`label` and one probability column per emotion, in `EMOTIONS` order. The
ferkit checkpoint inside the model carries the label order and preprocessing.
"""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class FERPyfunc(PythonModel):
    def load_context(self, context) -> None:
        from ferkit.inference.predictor import Predictor
        from ferkit.models import TrainedModel

        self.predictor = Predictor(TrainedModel.load(context.artifacts["checkpoint"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from ferkit.data.labels import EMOTIONS

        probs = self.predictor.predict_proba(list(model_input["image"]))
        out = pd.DataFrame(probs, columns=list(EMOTIONS))
        out.insert(0, "label", [EMOTIONS[i] for i in probs.argmax(axis=1)])
        return out


mlflow.models.set_model(FERPyfunc())
