"""The `fer_emotion` MLflow pyfunc, logged as a model from code.

Input: a DataFrame with, per row, either `image` (encoded image bytes: PNG,
JPEG, ... of any size and mode) or `pixels` (a 2-D array of 0-255 grayscale
values, 48x48 or any size). Both are converted to 48x48 grayscale the way
ingestion converts. Over REST the bytes travel base64-encoded. Output: a
DataFrame with `label` and one probability column per emotion, in `EMOTIONS`
order. The ferkit checkpoint inside the model carries the label order and
preprocessing.
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
        import numpy as np

        from ferkit.data.labels import EMOTIONS

        faces = []
        for i, row in enumerate(model_input.to_dict("records")):
            image, pixels = row.get("image"), row.get("pixels")
            if isinstance(image, (bytes, bytearray)):
                faces.append(bytes(image))
            elif pixels is not None and np.ndim(np.asarray(pixels, dtype=object)) >= 1:
                faces.append(np.asarray(pixels.tolist() if hasattr(pixels, "tolist") else pixels, dtype=np.float64))
            else:
                raise ValueError(f"row {i}: give `image` (encoded image bytes) or `pixels` (a 2-D grayscale array)")
        probs = self.predictor.predict_proba(faces)
        out = pd.DataFrame(probs, columns=list(EMOTIONS))
        out.insert(0, "label", [EMOTIONS[i] for i in probs.argmax(axis=1)])
        return out


mlflow.models.set_model(FERPyfunc())
