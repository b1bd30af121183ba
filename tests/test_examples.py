"""The runnable seed examples in examples/: each runs, and its two trainings agree.

Every script trains a seed notebook's NumPy loop and the fastnn.train call that
replaces it, prints the largest relative difference of the loss histories and of
the trained weights, and exits 0 when they agree. Here each runs in a subprocess
with 5 epochs (about 1-2 s each once the kernels are compiled). Measured at 5
epochs: differences <= 1.2e-15 (losses and weights, every script, default seeds).
"""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# script: (default epochs = the notebook's iterations, default --seed)
SCRIPTS = {
    "seed000_relu.py": (400, 0),
    "seed001_relu.py": (500, 1),
    "seed002_sigmoid.py": (2000, 2),
    "seed003_relu.py": (500, 3),
    "seed004_gd.py": (501, 4),
    "seed004_sgd.py": (501, 0),    # 4 kills every ReLU in epoch 1: see the script
}
DIFF = re.compile(r"^largest difference .*: losses (\S+), weights (\S+)$", re.MULTILINE)
BOUND = 1e-12   # at 5 epochs, float64: rounding only (measured <= 1.2e-15)


def run(script, *args, cwd):
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args],
                          check=False, capture_output=True, text=True, cwd=cwd, timeout=600)


def test_one_script_per_seed():
    assert sorted(p.name for p in EXAMPLES.glob("seed*.py")) == sorted(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_example(script, tmp_path):
    proc = run(script, "--epochs", "5", cwd=tmp_path)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    found = DIFF.findall(out)
    assert len(found) == 1, out
    losses, weights = (float(v) for v in found[0])
    assert 0 <= losses <= BOUND and 0 <= weights <= BOUND, out
    assert "verdict: same numbers" in out
    # the compile notice comes before fastnn's timing; both times are printed
    assert out.index("first call compiles") < out.index("fastnn.train:")
    assert re.search(r"^NumPy loop: +\d+\.\d+ s", out, re.MULTILINE), out
    assert re.search(r"^speedup: +\d+\.\d+x$", out, re.MULTILINE), out


@pytest.mark.parametrize("script", SCRIPTS)
def test_defaults_are_the_notebooks(script, tmp_path):
    epochs, seed = SCRIPTS[script]
    proc = run(script, "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())   # argparse wraps the help text
    assert f"(default: {epochs}, the notebook's)" in text
    assert f"(default: {seed})" in text


def test_bad_epochs(tmp_path):
    proc = run("seed004_gd.py", "--epochs", "0", cwd=tmp_path)
    assert proc.returncode == 2 and "--epochs must be at least 1" in proc.stderr


@pytest.fixture(scope="module")
def compare_module():
    spec = importlib.util.spec_from_file_location("_compare", EXAMPLES / "_compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("change, status", [
    pytest.param(lambda h, w: (h, w), 0, id="same"),
    pytest.param(lambda h, w: (h * (1 + 1e-14), w), 0, id="rounding"),
    pytest.param(lambda h, w: (h * (1 + 1e-6), w), 1, id="losses"),
    pytest.param(lambda h, w: (h, [w[0], w[1] + 1e-6]), 1, id="weights"),
    pytest.param(lambda h, w: (h[:-1], w), 1, id="length"),
    pytest.param(lambda h, w: (h * np.nan, w), 1, id="nan"),
])
def test_verdict(compare_module, capsys, change, status):
    # The verdict and exit status of every script come from _compare.compare.
    history = np.array([3.0, 2.0, 1.0])
    weights = [np.ones((2, 2)), np.full((1, 2), 0.5)]

    def numpy_run():
        return list(history), [w.copy() for w in weights]

    def fastnn_run():
        return change(history.copy(), [w.copy() for w in weights])

    assert compare_module.compare(numpy_run, fastnn_run) == status
    out = capsys.readouterr().out
    assert ("verdict: same numbers" in out) == (status == 0)
    assert ("verdict: DIFFERENT" in out) == (status == 1)
