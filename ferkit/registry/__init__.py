"""Everything that talks to the MLflow registry and tracking store, used by steps and CLI alike.

- `names`: the registry's vocabulary (model name, aliases, tags); no imports.
- `decision`: the champion/challenger decision as plain data.
- `store`: which tracking store, and `models:/` URIs resolved to a `TrainedModel`
  (a read-only SQLite fast path for the local stack, else MLflow's client).
- `tracking`: logging helpers that do nothing outside an MLflow run.
- `promotion`: aliases, re-scoring the champion, rollback, the version table.
- `publish`: log, register and promote a trained model.
- `stack`: the local ZenML stack `fer_local` whose tracker and registry are MLflow.

mlflow and zenml load only with the modules that need them: importing this package,
`names`, `decision` or `store` costs neither.
"""

from ferkit._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "ferkit.registry.store": ("ModelNotFound", "load_trained_model"),
        "ferkit.registry.decision": ("PromotionDecision", "RegistryError", "decide"),
    },
)
