"""Importing fastnn (issue 2): the train function survives ``import fastnn.train``,
fastnn.kernels is a subpackage, and no top-level ``kernels`` module is installed."""

import importlib
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

import fastnn


def run_fresh(code, cwd="/tmp"):
    """Run code in a fresh interpreter, outside the repository (so the checkout's
    folders are not on sys.path: only what is installed is importable)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_from_fastnn_import_train():
    from fastnn import predict, train
    from fastnn._driver import predict as driver_predict, train as driver_train
    assert train is driver_train and predict is driver_predict
    assert callable(train) and train.__name__ == "train"
    assert fastnn.train is train


def test_import_fastnn_train_keeps_the_function():
    from fastnn import train
    module = importlib.import_module("fastnn.train")
    exec("import fastnn.train", {})  # the statement itself
    assert fastnn.train is train and module is train
    assert callable(fastnn.train)


@pytest.mark.parametrize("code", [
    # the submodule-style import first, in a fresh interpreter
    """
    import fastnn.train
    import fastnn
    from fastnn import train
    from fastnn._driver import train as driver_train
    assert fastnn.train is train is driver_train, fastnn.train
    """,
    # the function first, then the submodule-style import
    """
    from fastnn import train
    import fastnn.train
    import fastnn
    from fastnn._driver import train as driver_train
    assert fastnn.train is train is driver_train, fastnn.train
    import numpy as np
    x = np.ones((2, 1))
    assert fastnn.train(x, x, [np.ones((1, 1))], lr=0.1, epochs=1).shape == (1,)
    """,
    # import fastnn.train as ...: binds whatever sys.modules holds, the function
    """
    import fastnn.train as t
    import fastnn
    assert t is fastnn.train and callable(t)
    """,
    # importlib and a reload of the package keep the function
    """
    import importlib, fastnn
    importlib.import_module("fastnn.train")
    fastnn = importlib.reload(fastnn)
    import fastnn.train
    from fastnn._driver import train as driver_train
    assert callable(fastnn.train) and fastnn.train.__name__ == "train"
    """,
], ids=["submodule-first", "function-first", "import-as", "reload"])
def test_import_orders_in_a_fresh_interpreter(code):
    run_fresh(code)


def test_kernels_is_a_subpackage():
    import fastnn.kernels as K
    from fastnn.kernels.loop import run_epochs  # noqa: F401
    assert K is fastnn.kernels and K.__name__ == "fastnn.kernels"
    assert os.path.basename(os.path.dirname(K.__file__)) == "kernels"
    assert sys.modules["fastnn.kernels"] is K


def test_no_top_level_kernels_module():
    out = run_fresh("""
    import importlib.util, sys
    assert importlib.util.find_spec("kernels") is None, importlib.util.find_spec("kernels")
    import fastnn
    import fastnn.kernels
    assert "kernels" not in sys.modules
    assert fastnn.kernels.__name__ == "fastnn.kernels"
    assert importlib.util.find_spec("kernels") is None
    try:
        import kernels
    except ModuleNotFoundError:
        print("no kernels")
    """)
    assert out.strip() == "no kernels"


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_regular_build_installs_only_the_fastnn_package(tmp_path):
    """What a regular (non-editable) wheel would contain: setuptools' build_py on a
    copy of the sources (offline, no wheel package needed). Only ``fastnn`` at the top
    level, with kernels/ inside it as fastnn/kernels, importable from there."""
    import shutil
    pytest.importorskip("setuptools")  # venvs of Python >= 3.12 may not have it
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", "*.egg-info", "build", "dist", "tests", "bench", ".ci"))
    lib = tmp_path / "lib"
    result = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
         "--build-lib", str(lib)], cwd=src, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in lib.iterdir()) == ["fastnn"]
    kernel_sources = sorted(f for f in os.listdir(os.path.join(REPO, "kernels")) if f.endswith(".py"))
    assert kernel_sources and sorted(
        p.name for p in (lib / "fastnn" / "kernels").glob("*.py")) == kernel_sources
    # the built tree imports on its own: fastnn.kernels from fastnn/kernels, no "kernels"
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent("""
            import importlib.util, sys
            import fastnn, fastnn.kernels
            print(fastnn.__file__)
            print(fastnn.kernels.__file__)
            print(importlib.util.find_spec("kernels"), "kernels" in sys.modules)
        """)], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(lib)},
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    init, kernels_init, last = out.stdout.split("\n")[:3]
    assert init == str(lib / "fastnn" / "__init__.py")
    assert kernels_init == str(lib / "fastnn" / "kernels" / "__init__.py")
    assert last == "None False"


def test_source_checkout_without_editable_install():
    """README command 1 runs ``python -m fastnn`` from the repository root after a
    plain ``pip install .``: then ./fastnn (first on sys.path) is imported, whose
    kernels sit beside it in ./kernels. Simulated by hiding any editable-install
    finder, so only the checkout's layout is available."""
    code = textwrap.dedent("""
        import sys
        sys.meta_path[:] = [f for f in sys.meta_path
                            if not getattr(f, "__module__", "").startswith("__editable__")]
        sys.path_hooks[:] = [h for h in sys.path_hooks
                             if not getattr(h, "__module__", "").startswith("__editable__")]
        sys.path_importer_cache.clear()
        import fastnn, fastnn.kernels, fastnn.cli
        import numpy as np
        print(fastnn.__file__)
        print(fastnn.kernels.__file__)
        w = [np.ones((2, 1))]
        fastnn.train(np.ones((3, 2)), np.zeros((3, 1)), w, lr=0.1, epochs=2)
        print(float(w[0][0, 0]) < 1.0)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    init, kernels_init, trained = out.stdout.split("\n")[:3]
    assert init == os.path.join(REPO, "fastnn", "__init__.py")
    assert kernels_init == os.path.join(REPO, "kernels", "__init__.py")
    assert trained == "True"
