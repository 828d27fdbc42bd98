"""``%%serve``, ``%%rollout``/``%rollout`` and ``%wb predict`` in a real kernel, against real
local endpoints (a router and KServe model servers on loopback)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .kernel import Kernel

MODEL = """
import numpy as np

def predict(inputs):
    return np.asarray(inputs, dtype="float32") * scale
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    k = Kernel.isolated(tmp_path_factory.mktemp("serve") / "wbhome")
    assert k.run("%load_ext workbench").error is None
    yield k
    k.run("%wb rm cell-model --force")
    k.stop()


def test_serve_predict_rollout_undo_from_cells(kernel: Kernel) -> None:
    assert kernel.run("import numpy as np\nscale = 2.0\nX = np.ones((1, 3), dtype='float32')").error is None
    reply = kernel.run(f"%%serve --name cell-model --send scale\n{MODEL}")
    assert reply.error is None, reply.error_text
    assert "cell-model complete: serving at http://127.0.0.1:" in reply.stdout
    assert "revision 1, 1/1 replicas ready" in reply.stdout

    reply = kernel.run("answer = %wb predict cell-model X\nprint(answer.dtype, answer.tolist())")
    assert reply.stdout == "float32 [[2.0, 2.0, 2.0]]\n", reply.error_text

    assert kernel.run("scale = 5.0").error is None
    reply = kernel.run(f"%%rollout cell-model --send scale\n{MODEL}")
    assert reply.error is None, reply.error_text
    assert "revision 2" in reply.stdout
    assert kernel.run("y = %wb predict cell-model X\nprint(y.tolist())").stdout == "[[5.0, 5.0, 5.0]]\n"

    reply = kernel.run("%rollout undo cell-model")
    assert "revision 3" in reply.stdout, reply.error_text
    reply = kernel.run("y = %wb predict cell-model [[1,1,1]]\nprint(y.tolist())")
    assert reply.stdout == "[[2.0, 2.0, 2.0]]\n", reply.error_text
    history = kernel.run("%rollout history cell-model").stdout
    assert "undo to 1" in history and "launch" in history


def test_errors_are_one_line(kernel: Kernel) -> None:
    reply = kernel.run("%%serve --name not-a-model\nx = 1\n")
    assert reply.error is not None
    assert len(reply.error["traceback"]) == 1
    assert "defines no model" in reply.error["traceback"][0]
    reply = kernel.run("%rollout undo no-such-endpoint")
    assert reply.error is not None and "no-such-endpoint" in reply.error["traceback"][0]
    reply = kernel.run("%wb predict cell-model not_a_variable")
    assert reply.error is not None
    assert "neither a variable of this kernel nor JSON" in reply.error["traceback"][0]
    reply = kernel.run("%serve --name no-cell --model-uri s3://bucket/model")
    assert reply.error is not None and len(reply.error["traceback"]) == 1
    assert reply.error["traceback"][0] == (
        "\x1b[31mworkbench: %serve without a cell serves an MLflow model: give --model-uri "
        "models:/NAME/VERSION, or write the model in the cell (%%serve)\x1b[0m"
    )
