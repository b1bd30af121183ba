"""fastnn: train small dense networks with compiled (Numba) loops.

    import fastnn
    history = fastnn.train(x, y, [w1, w2], lr=1e-6, epochs=500)

Data flow: ``_validate`` (arrays in) -> ``_state`` (the plan and flat buffers)
-> ``_driver`` (chunks of epochs, hooks, write-back) -> ``fastnn.kernels`` (the
compiled loop) -> the user's arrays, updated in place. ``fastnn.reference`` is
the plain NumPy oracle.
"""

import sys as _sys


def _import_kernels():
    # Installed, kernels/ lives at fastnn/kernels. In a source checkout run without
    # an editable install (python -m fastnn from the repo root after a plain
    # pip install), it sits beside this folder: load it from there.
    import importlib
    try:
        return importlib.import_module(__name__ + ".kernels")
    except ModuleNotFoundError as exc:
        if exc.name != __name__ + ".kernels":
            raise
        import importlib.util
        import os
        root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernels")
        spec = importlib.util.spec_from_file_location(
            __name__ + ".kernels", os.path.join(root, "__init__.py"),
            submodule_search_locations=[root])
        if spec is None:
            raise
        kernels = importlib.util.module_from_spec(spec)
        _sys.modules[spec.name] = kernels
        spec.loader.exec_module(kernels)
        return kernels


kernels = _import_kernels()

from . import reference  # noqa: E402
from ._driver import History, predict, train  # noqa: E402
from ._errors import DivergenceError  # noqa: E402
from ._gradcheck import gradcheck  # noqa: E402
from ._many import predict_many, train_many  # noqa: E402
from .optim import SGD, Adam  # noqa: E402

# ``import fastnn.train`` must work and must not replace the function: the import
# system finds this entry and never looks for (or binds) a submodule of that name.
_sys.modules[__name__ + ".train"] = train

__version__ = "0.2.0"
__all__ = ["train", "predict", "train_many", "predict_many", "gradcheck", "SGD", "Adam",
           "History", "DivergenceError", "reference", "kernels"]
