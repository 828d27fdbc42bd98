"""The static check that served code defines a model (no code is run)."""

from __future__ import annotations

import pytest

from workbench.serve_check import model_problem

NO_MODEL = "serve.py defines no model: add a kserve.Model subclass or a predict(inputs) function"


@pytest.mark.parametrize(
    "source",
    [
        "import kserve\n\nclass M(kserve.Model):\n    pass\n",
        "from kserve import Model\n\nclass M(Model):\n    pass\n",
        "from kserve import Model as Base\n\nclass M(Base):\n    pass\n",
        "import kserve as ks\n\nclass M(ks.Model, object):\n    pass\n",
        "def predict(inputs):\n    return inputs\n",
        "async def predict(inputs):\n    return inputs\n",
        "import torch\nnet = torch.load('m.pt')\npredict = net.forward\n",
        "from mypackage.scoring import predict\n",
        "try:\n    import torch\nexcept ImportError:\n    pass\nelse:\n    def predict(x): ...\n",
        "if True:\n    class M(__import__('kserve').Model):\n        pass\n",
    ],
    ids=["kserve.Model", "Model", "alias", "module alias", "predict", "async predict",
         "assigned predict", "imported predict", "in a try", "in an if"],
)  # fmt: skip
def test_code_that_defines_a_model_passes(source: str) -> None:
    assert model_problem(source, "serve.py") is None


@pytest.mark.parametrize(
    "source",
    [
        "",
        "import numpy as np\nweights = np.ones(3)\n",
        "import torch.nn as nn\n\nclass Net(nn.Module):\n    pass\n",
        "class Scorer:\n    def predict(self, inputs):\n        return inputs\n",  # a method, not a function
        "def main():\n    def predict(x):\n        return x\n",  # not at the top level
        "from kserve import Model\n\nclass Loader:\n    model = Model\n",
    ],
    ids=["empty", "no model", "torch module", "predict method", "nested predict", "Model not a base"],
)  # fmt: skip
def test_code_that_defines_no_model_gets_one_line(source: str) -> None:
    assert model_problem(source, "serve.py") == NO_MODEL


def test_a_syntax_error_gives_its_line() -> None:
    problem = model_problem("import kserve\n\nclass M(kserve.Model:\n    pass\n", "serve.py")
    assert problem is not None
    assert problem.startswith("serve.py, line 3: ")
    assert "\n" not in problem


def test_null_bytes_are_one_line_too() -> None:
    problem = model_problem("def predict(x):\x00\n", "the cell")
    assert problem is not None and problem.startswith("the cell") and "\n" not in problem
