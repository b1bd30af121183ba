"""``python -m fastnn demo`` and the console script ``fastnn`` (issue 5, "Command line").

Runs use few epochs (and mostly the tiny mlp3 workloads) to stay fast on two cores.
"""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import cli
from fastnn._workloads import NAMES, WORKLOADS, build

ROW_FIELDS = {
    "name", "seeds", "shape", "activation", "loss", "lr", "epochs", "batch_size",
    "numpy_seconds", "fastnn_seconds", "speedup", "numpy_runs", "fastnn_runs",
    "numpy_final_loss", "fastnn_final_loss", "numpy_first_loss",
    "max_abs_weight_diff", "max_abs_weight",
}


def demo(capsys, *args):
    """Run `fastnn demo ARGS` in-process; returns (status, stdout, stderr)."""
    status = cli.main(["demo", *args])
    out, err = capsys.readouterr()
    return status, out, err


def demo_json(capsys, *args):
    status, out, err = demo(capsys, "--json", *args)
    assert status == 0, err
    return json.loads(out), err  # the whole of stdout is one JSON document


def check_row(row, dtype):
    assert set(row) == ROW_FIELDS
    assert row["numpy_seconds"] > 0 and row["fastnn_seconds"] > 0
    assert row["speedup"] == pytest.approx(row["numpy_seconds"] / row["fastnn_seconds"], rel=1e-12)
    assert 1 <= row["numpy_runs"] <= cli.MAX_RUNS and 1 <= row["fastnn_runs"] <= cli.MAX_RUNS
    rtol = 1e-9 if dtype == "float64" else 1e-4
    assert row["fastnn_final_loss"] == pytest.approx(row["numpy_final_loss"], rel=rtol)
    assert 0 <= row["max_abs_weight_diff"] <= rtol * max(1.0, row["max_abs_weight"])
    assert row["numpy_final_loss"] < row["numpy_first_loss"]  # it trained


def reference_run(name, dtype, epochs):
    """The workload trained by the NumPy reference, independently of the CLI."""
    p = build(name, dtype)
    w, b = p.copy_params()
    history = fastnn.reference.train(p.x, p.y, w, b, **p.train_kwargs(epochs))
    return history, w + (b or [])


# ----------------------------------------------------------------------------- JSON

def test_json_fields_and_consistency(capsys):
    report, err = demo_json(capsys, "--workload", "mlp3_gd", "--epochs", "20")
    assert report["dtype"] == "float64" and report["epochs_override"] == 20
    assert report["fastnn_version"] == fastnn.__version__
    assert report["numpy_version"] == np.__version__
    assert report["warmup"]["dtype"] == "float64" and report["warmup"]["seconds"] > 0
    assert isinstance(report["warmup"]["compiled"], bool)
    assert report["total_seconds"] > 0 and report["plot"] is None
    [row] = report["workloads"]
    check_row(row, "float64")
    w = WORKLOADS["mlp3_gd"]
    assert (row["name"], row["shape"], row["epochs"], row["lr"], row["loss"]) == \
        ("mlp3_gd", "900x5->4->4->1", 20, w.lr, w.loss)
    # the numbers are those of the workload itself
    history, _ = reference_run("mlp3_gd", np.float64, 20)
    assert row["numpy_final_loss"] == history[-1]
    assert row["numpy_first_loss"] == history[0]


def test_json_float32_and_workload_selection(capsys):
    report, _ = demo_json(capsys, "--dtype", "float32", "--epochs", "3", "--workload", "mlp3_sgd",
                          "--workload", "mlp3_gd", "--workload", "mlp3_sgd")
    assert report["dtype"] == "float32" and report["warmup"]["dtype"] == "float32"
    # the order asked for, each once
    assert [r["name"] for r in report["workloads"]] == ["mlp3_sgd", "mlp3_gd"]
    for row in report["workloads"]:
        check_row(row, "float32")
        assert row["epochs"] == 3
    history, _ = reference_run("mlp3_sgd", np.float32, 3)
    assert report["workloads"][0]["numpy_final_loss"] == history[-1]


def test_default_runs_every_workload_with_its_own_epochs(capsys, monkeypatch):
    # The default demo, with the training replaced by a stub that records the calls:
    # checks the selection and the schedules without paying for 4 real workloads.
    calls = []

    def fake_train(x, y, weights, biases=None, **kwargs):
        calls.append((x.shape, [w.shape for w in weights], biases is not None, kwargs))
        return np.linspace(2.0, 1.0, kwargs["epochs"])

    fake = types.SimpleNamespace(train=fake_train, reference=types.SimpleNamespace(train=fake_train),
                                 DivergenceError=fastnn.DivergenceError,
                                 __version__=fastnn.__version__, kernels=None)
    monkeypatch.setitem(sys.modules, "fastnn", fake)
    monkeypatch.setattr(cli, "MAX_RUNS", 1)
    report, _ = demo_json(capsys)
    assert [r["name"] for r in report["workloads"]] == list(NAMES)
    assert [r["epochs"] for r in report["workloads"]] == [500, 200, 501, 501]
    assert report["epochs_override"] is None
    # each workload: one warm-up epoch (it compiles that workload's code path), then
    # trained twice (NumPy, fastnn)
    assert len(calls) == 3 * len(NAMES)
    warm, timed = calls[:len(NAMES)], calls[len(NAMES):]
    assert [c[3]["epochs"] for c in warm] == [1] * len(NAMES)
    # the same network and batch mode as the timed runs: the same code path
    same = lambda c: (c[0], c[1], c[2], {k: v for k, v in c[3].items() if k != "epochs"})  # noqa: E731
    assert [same(c) for c in warm] == [same(c) for c in timed[::2]]
    for (x_shape, shapes, has_b, kwargs), name in zip(timed[::2], NAMES):
        w = WORKLOADS[name]
        assert x_shape == (w.rows, w.widths[0])
        assert shapes == list(zip(w.widths, w.widths[1:]))
        assert has_b == (w.biases != "none")
        assert kwargs == w.train_kwargs()


# ----------------------------------------------------------------------------- table

def test_table(capsys):
    status, out, err = demo(capsys, "--workload", "mlp3_gd", "--workload", "mlp3_sgd",
                            "--epochs", "4")
    assert status == 0, err
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("workload"))
    for column in ("NumPy", "fastnn", "speedup", "NumPy loss", "fastnn loss", "max |dw|"):
        assert column in header
    rows = {line.split()[0]: line.split() for line in lines
            if line.split() and line.split()[0] in NAMES}
    assert list(rows) == ["mlp3_gd", "mlp3_sgd"]
    for name, cells in rows.items():
        history, _ = reference_run(name, np.float64, 4)
        assert cells[1] == WORKLOADS[name].shape and cells[2] == "4"
        assert cells[-4].endswith("x") and float(cells[-4][:-1]) > 0  # speedup
        assert float(cells[-3]) == pytest.approx(history[-1], rel=1e-4)  # NumPy loss
        assert float(cells[-2]) == pytest.approx(history[-1], rel=1e-4)  # fastnn loss
        assert float(cells[-1]) < 1e-9  # max |dw|
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- bad options

@pytest.mark.parametrize("argv, mentions", [
    (["demo", "--epochs", "0"], "--epochs"),
    (["demo", "--epochs", "-5"], "--epochs"),
    (["demo", "--epochs", "abc"], "--epochs"),
    (["demo", "--epochs", "2.5"], "--epochs"),
    (["demo", "--epochs"], "--epochs"),
    (["demo", "--workload", "relu3"], "relu3"),
    (["demo", "--workload", "mlp3_gd", "--workload", "nope"], "nope"),
    (["demo", "--dtype", "float16"], "float16"),
    (["demo", "--plot", "no/such/folder/demo.png"], "--plot"),
    (["demo", "--plot", "demo.jpg"], "--plot"),
    (["demo", "--frobnicate"], "--frobnicate"),
    (["train"], "train"),
    ([], "COMMAND"),
])
def test_bad_options_exit_2_with_one_line(argv, mentions, capsys):
    status = cli.main(argv)
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "error" in err and mentions in err and "Traceback" not in err


def test_help_exits_0(capsys):
    assert cli.main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        assert name in out
    assert "--plot" in out and "fastnn[plot]" in out


def test_main_module_returns_status():
    from fastnn.__main__ import main
    assert main(["demo", "--epochs", "x"]) == 2


def test_divergence_is_one_line_and_status_1(capsys, monkeypatch):
    unstable = dataclasses.replace(WORKLOADS["mlp3_gd"], lr=1e3)
    monkeypatch.setitem(cli.WORKLOADS, "mlp3_gd", unstable)
    status, out, err = demo(capsys, "--workload", "mlp3_gd", "--epochs", "50")
    assert status == 1
    assert err.count("\n") == 1 and "diverged" in err and "mlp3_gd" in err
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- compile notice

def test_warm_up_notice_when_slow(monkeypatch, capsys):
    import time
    monkeypatch.setattr(cli, "NOTICE_AFTER", 0.05)
    slow = types.SimpleNamespace(train=lambda *a, **k: time.sleep(0.8), kernels=None)
    info = cli._warm_up(slow, np.dtype(np.float32), sys.stderr)
    err = capsys.readouterr().err
    # not a terminal: one line, completed when the work is done
    assert re.fullmatch(r"compiling fastnn kernels for float32 \(first run only\)\.\.\. "
                        r"done in \d+\.\d s\n", err), err
    assert info["dtype"] == "float32" and info["seconds"] >= 0.8


def test_warm_up_silent_when_fast(capsys):
    fast = types.SimpleNamespace(train=lambda *a, **k: None, kernels=None)
    info = cli._warm_up(fast, np.dtype(np.float64), sys.stderr)
    assert capsys.readouterr() == ("", "")
    assert info["seconds"] < cli.NOTICE_AFTER


def test_first_run_says_compiling(tmp_path):
    # A real first run: an empty Numba cache forces compiling the float32 kernels
    # (about 10 s; the one slow test here). The notice is on stderr, the JSON alone
    # on stdout.
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    proc = subprocess.run(
        [sys.executable, "-m", "fastnn", "demo", "--json", "--dtype", "float32",
         "--workload", "mlp3_gd", "--epochs", "2"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["warmup"]["compiled"] is True
    assert "compiling fastnn kernels for float32 (first run only)... done in" in proc.stderr
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- subprocess

def test_subprocess_json(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fastnn", "demo", "--workload", "mlp3_gd", "--epochs", "20",
         "--json"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    [row] = report["workloads"]
    check_row(row, "float64")
    history, _ = reference_run("mlp3_gd", np.float64, 20)
    assert row["numpy_final_loss"] == history[-1]
    assert "Traceback" not in proc.stderr


def test_subprocess_bad_option(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fastnn", "demo", "--epochs", "0"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "--epochs" in proc.stderr


def test_console_script(tmp_path):
    script = Path(sys.executable).with_name("fastnn")
    if not script.exists():
        script = shutil.which("fastnn")
        if script is None:
            pytest.skip("the console script fastnn is not installed")
    proc = subprocess.run([str(script), "demo", "--workload", "nope"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "nope" in proc.stderr


# ----------------------------------------------------------------------------- --plot

def test_plot_without_matplotlib(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails

    def must_not_train(*args, **kwargs):
        raise AssertionError("the demo trained before checking for matplotlib")

    monkeypatch.setattr(fastnn.reference, "train", must_not_train)
    target = tmp_path / "demo.png"
    status, out, err = demo(capsys, "--plot", str(target), "--epochs", "2")
    assert status == 1
    assert out == ""
    assert err.count("\n") == 1
    assert 'pip install "fastnn[plot]"' in err and "matplotlib" in err
    assert "Traceback" not in err
    assert not target.exists()


def test_plot_writes_a_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread
    target = tmp_path / "demo.png"
    status, out, err = demo(capsys, "--plot", str(target), "--epochs", "5",
                            "--workload", "mlp3_gd", "--workload", "mlp3_sgd")
    assert status == 0, err
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(target)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400
    assert image[..., :3].std() > 0.05  # not blank
    assert str(target) in out


def test_plot_with_json_keeps_stdout_json(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "demo.svg"
    report, err = demo_json(capsys, "--plot", str(target), "--epochs", "3",
                            "--workload", "mlp3_gd")
    assert report["plot"] == str(target)
    assert target.read_text().lstrip().startswith(("<?xml", "<svg"))
    assert str(target) in err
