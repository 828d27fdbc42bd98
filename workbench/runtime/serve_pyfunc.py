"""Serves an MLflow model (``--model-uri models:/NAME/VERSION`` or ``runs:/ID/PATH``) through
``mlflow.pyfunc``: the code a ``serve`` workload gets when it names an MLflow model and no
code of its own (:data:`workbench.spec_serve.PYFUNC_CODE`) calls :func:`load` and
:func:`predict` here.

The replica's function wrapper (:mod:`.serve_model`) hands :func:`predict` an array (V1's
``instances``, V2's first tensor). A model whose signature names columns gets them as a
DataFrame with those columns; its answer goes back as an array.
"""

from __future__ import annotations

from typing import Any

_model: Any = None


def load(model_uri: str) -> None:
    """Load the model (the registry and artifact store are ``MLFLOW_TRACKING_URI``'s)."""
    global _model
    import mlflow.pyfunc

    _model = mlflow.pyfunc.load_model(model_uri)


def predict(inputs: Any) -> Any:
    """The model's prediction for ``inputs``, as an array (or what the model answered)."""
    if _model is None:
        raise RuntimeError("the MLflow model is not loaded: load(model_uri) comes first")
    return _answer(_model.predict(_question(inputs)))


def _question(inputs: Any) -> Any:
    schema = _model.metadata.get_input_schema()
    shape = getattr(inputs, "shape", None)
    if schema is None or schema.is_tensor_spec() or shape is None or len(shape) != 2:
        return inputs
    import pandas as pd  # type: ignore[import-untyped]

    names = schema.input_names()
    if len(names) != shape[1]:
        raise ValueError(f"the model takes {len(names)} columns ({', '.join(names)}), got {shape[1]}")
    return pd.DataFrame(inputs, columns=names)


def _answer(output: Any) -> Any:
    import numpy as np

    if hasattr(output, "to_numpy"):  # a pandas DataFrame or Series
        return output.to_numpy()
    if isinstance(output, list):
        return np.asarray(output)
    return output
