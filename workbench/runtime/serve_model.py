"""Loads the model of one ``serve`` revision from its payload folder.

The payload folder (``RUN_DIR/revisions/<N>/`` locally, the mounted ConfigMap on Kubernetes)
holds the code (``cell.py`` or the script), optional ``inputs.pkl`` (the ``--send`` variables,
cloudpickle) and ``meta.json`` (``entry``, ``argv0``, ``args``, ``model_name``, ``model_uri``,
``max_body``). The code runs once, staged as :mod:`.cell` stages a pod's code (the sent
variables in its namespace, ``sys.argv`` from the launch, a traceback trimmed to the user's
frames), but as the module ``__serve__`` rather than ``__main__``: code written as a KServe
custom predictor starts its own ModelServer under ``if __name__ == "__main__"``, and here the
replica serves it instead.

The code defines (checked without running it by ``workbench.serve_check.model_problem``):

- a ``kserve.Model`` subclass: made as ``Cls(model_name)``, ``self.model_uri`` set, then
  ``load()`` called, with the model URI when it takes a parameter;
- or a plain ``predict(inputs)`` function (and optionally ``load(model_uri)``, called once
  first), wrapped into a ``kserve.Model``: V1 ``{"instances": [...]}`` becomes
  ``predict(np.asarray(instances))`` and ``{"predictions": ...}``; V2 passes the first input
  tensor as an array (a dict name → array when there are several) and answers typed tensors.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
import inspect
import os
import runpy
import sys
import types
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .cell import _user_traceback, load_inputs

#: ``__name__`` of the served code (not ``__main__``, see the module docstring).
RUN_NAME = "__serve__"

#: What ``import kserve`` offers at once, by module: the serving names of its ``__init__``.
_SERVING_NAMES = {
    "kserve.model": ("Model",),
    "kserve.predictor_config": ("PredictorConfig",),
    "kserve.model_server": ("ModelServer",),
    "kserve.inference_client": ("InferenceGRPCClient", "InferenceRESTClient", "RESTConfig"),
    "kserve.protocol.infer_type": ("InferRequest", "InferInput", "InferResponse", "InferOutput"),
    "kserve.model_repository": ("ModelRepository",),
}


class LoadError(Exception):
    """The revision has no model to serve; the message is one line.

    ``printed`` says whether the user's traceback, which ends with that line, is on stderr already.
    """

    def __init__(self, message: str, *, printed: bool = False) -> None:
        super().__init__(message)
        self.printed = printed


def import_kserve() -> types.ModuleType:
    """Import kserve's serving half without running its package ``__init__``.

    ``kserve/__init__.py`` also imports its Kubernetes client and a hundred API models, about
    1.5 s of a replica's start that serving never uses. The package module is made here
    without that: the serving names of its ``__init__`` are set at once, and the first other
    attribute asked of it runs the real ``__init__`` (so ``kserve.KServeClient`` still works).
    ``kserve.model_server`` parses ``sys.argv`` when imported; it sees a clean one.
    """
    loaded = sys.modules.get("kserve")
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec("kserve")
    if spec is None or spec.loader is None:
        raise LoadError("serving needs the kserve package: pip install 'jupyter-ml-workbench[serve]'")
    package = importlib.util.module_from_spec(spec)
    sys.modules["kserve"] = package
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        for module_name, names in _SERVING_NAMES.items():
            module = importlib.import_module(module_name)
            for name in names:
                setattr(package, name, getattr(module, name))
        # as kserve's __init__ binds them: the modules, not the subpackages of the same name
        for name in ("constants", "utils"):
            setattr(package, name, importlib.import_module(f"kserve.{name}.{name}"))
    except BaseException:
        del sys.modules["kserve"]
        raise
    finally:
        sys.argv = argv
    loader = spec.loader

    def complete(name: str) -> Any:
        if name.startswith("__"):  # probes such as __all__ or __wrapped__ do not warrant the rest
            raise AttributeError(f"module 'kserve' has no attribute {name!r}")
        del package.__dict__["__getattr__"]
        loader.exec_module(package)
        return getattr(package, name)

    setattr(package, "__getattr__", complete)  # noqa: B010 - a module-level __getattr__ (PEP 562)
    return package


def load_model(payload: Path, meta: Mapping[str, Any]) -> Any:
    """Run the revision's code and return its model, loaded and ready (a kserve model).

    Raises:
        LoadError: the code failed, defines no model or several, or its load failed; the
            user's traceback is on stderr already and the message is its last line.
    """
    import_kserve()
    entry = str(payload / meta["entry"])
    shown = str(meta.get("argv0") or meta["entry"])
    namespace = _run_code(payload, meta, entry, shown)
    name = str(meta.get("model_name") or "model")
    uri = meta.get("model_uri")
    model_class = _model_class(namespace, shown)
    try:
        if model_class is not None:
            model = model_class(name)
            if uri is not None or not hasattr(model, "model_uri"):
                model.model_uri = uri
            loaded = _call_load(model.load, uri)
        else:
            predict = namespace.get("predict")
            if not callable(predict):
                raise LoadError(
                    f"{shown} defines no model: add a kserve.Model subclass or a predict(inputs) function"
                )
            load = namespace.get("load")
            loaded = None
            if callable(load) and getattr(load, "__module__", None) == RUN_NAME:  # not an imported load
                loaded = _call_load(load, uri)
            model = _function_model_class()(name, predict)
    except LoadError:
        raise
    except (Exception, SystemExit) as exc:
        raise LoadError(_last_line(_user_traceback(exc, entry, shown)), printed=True) from None
    if loaded is False:
        raise LoadError(f"{shown}: load() returned False: the model is not ready")
    model.ready = True  # a load() that returned is a loaded model, whether or not it set ready
    return model


def _run_code(payload: Path, meta: Mapping[str, Any], entry: str, shown: str) -> dict[str, Any]:
    sys.argv = [shown, *meta.get("args", [])]
    if meta.get("cwd_on_path", True):
        sys.path.insert(0, os.getcwd())
    try:
        inputs = load_inputs(payload)
        return runpy.run_path(entry, init_globals=inputs, run_name=RUN_NAME)
    except (Exception, SystemExit) as exc:
        raise LoadError(_last_line(_user_traceback(exc, entry, shown)), printed=True) from None


def _model_class(namespace: Mapping[str, Any], shown: str) -> type[Any] | None:
    """The one kserve model class the code defines (not imports), or ``None``."""
    from kserve.model import BaseKServeModel

    defined = [
        value
        for value in namespace.values()
        if isinstance(value, type) and issubclass(value, BaseKServeModel) and value.__module__ == RUN_NAME
    ]
    leaves = [
        cls for cls in defined if not any(other is not cls and issubclass(other, cls) for other in defined)
    ]
    if len(leaves) > 1:
        names = ", ".join(cls.__name__ for cls in leaves)
        raise LoadError(f"{shown} defines {len(leaves)} models ({names}): serve one per workload")
    return leaves[0] if leaves else None


def _call_load(load: Callable[..., Any], uri: str | None) -> Any:
    """Call a load function or method, with the URI when it takes a positional parameter."""
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    try:
        takes_uri = any(p.kind in positional for p in inspect.signature(load).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature
        takes_uri = False
    result = load(uri) if takes_uri else load()
    if inspect.isawaitable(result):
        result = asyncio.run(_awaited(result))
    return result


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "the model failed to load"


def v2_datatype(dtype: np.dtype[Any]) -> str:
    """The Open Inference Protocol datatype of a numpy dtype: FP32, FP64, INT64, BOOL, BYTES..."""
    from kserve.errors import InferenceError
    from kserve.utils.numpy_codec import from_np_dtype

    datatype = from_np_dtype(dtype)
    if datatype is None:
        raise InferenceError(
            f"predict returned {dtype} values, which have no inference-protocol datatype: "
            "return numbers, booleans or strings"
        )
    return str(datatype)


def as_array(value: Any) -> np.ndarray[Any, Any]:
    """``value`` as a numpy array that the protocol can carry (a torch tensor on any device too)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype.kind in "US":  # strings travel as BYTES, which kserve encodes from objects
        return array.astype(object)
    if array.dtype == np.float16:  # FP16 has no JSON form in kserve
        return array.astype(np.float32)
    return array


def _jsonable(value: Any) -> Any:
    """A V1 prediction as JSON values (arrays and tensors as nested lists)."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "detach"):
        return as_array(value).tolist()
    return value


@functools.cache
def _function_model_class() -> type[Any]:
    """The kserve.Model class that serves a plain ``predict(inputs)`` function (made once kserve is in)."""
    from kserve.errors import InvalidInput
    from kserve.model import Model
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

    def v1_inputs(payload: Any) -> Any:
        if not isinstance(payload, dict) or not ({"instances", "inputs"} & payload.keys()):
            raise InvalidInput('expected a JSON object {"instances": [...]}')
        try:
            return np.asarray(payload["instances"] if "instances" in payload else payload["inputs"])
        except ValueError as exc:  # ragged lists
            raise InvalidInput(f"instances: {exc}") from None

    def v2_inputs(request: Any) -> Any:
        arrays = {}
        for tensor in request.inputs:
            try:
                arrays[tensor.name] = tensor.as_numpy()
            except (ValueError, TypeError) as exc:  # data that does not fill the shape, or of another type
                raise InvalidInput(f"input {tensor.name!r}: {exc}") from None
        if not arrays:
            raise InvalidInput("the request has no inputs")
        return next(iter(arrays.values())) if len(arrays) == 1 else arrays

    def v2_response(request: Any, result: Any, name: str) -> Any:
        named = result.items() if isinstance(result, dict) else [("output-0", result)]
        outputs = []
        for output_name, value in named:
            array = as_array(value)
            outputs.append(InferOutput(str(output_name), list(array.shape), v2_datatype(array.dtype), array))
        return InferResponse(
            response_id=request.id or str(uuid.uuid4()),
            model_name=name,
            infer_outputs=outputs,
            use_binary_outputs=request.use_binary_outputs,
            requested_outputs=request.request_outputs,
        )

    class FunctionModel(Model):  # type: ignore[misc]
        """A plain ``predict(inputs)`` function served as a ``kserve.Model``."""

        def __init__(self, name: str, function: Callable[[Any], Any]) -> None:
            super().__init__(name)
            self.function = function

        async def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
            if isinstance(payload, InferRequest):
                return v2_response(payload, await self._call(v2_inputs(payload)), self.name)
            return {"predictions": _jsonable(await self._call(v1_inputs(payload)))}

        async def _call(self, inputs: Any) -> Any:
            result = self.function(inputs)  # on the event loop, as kserve runs a synchronous predict
            return (await result) if inspect.isawaitable(result) else result

    return FunctionModel
