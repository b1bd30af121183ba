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
import time
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
    monkeypatch.setattr(cli, "_have_sklearn", lambda: False)  # digits: test_digits_*
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


def test_digits_against_scikit_learn(capsys):
    # the classification row: fastnn.sklearn.MLPClassifier against scikit-learn's own, from
    # the same random_state; Adam agrees to 1e-6 (tests/test_sklearn.py measures it)
    pytest.importorskip("sklearn")
    report, _ = demo_json(capsys, "--workload", "digits", "--epochs", "3")
    [row] = report["workloads"]
    assert set(row) == ROW_FIELDS and row["name"] == "digits" and row["epochs"] == 3
    assert row["speedup"] == pytest.approx(row["numpy_seconds"] / row["fastnn_seconds"], rel=1e-12)
    assert row["fastnn_final_loss"] == pytest.approx(row["numpy_final_loss"], rel=1e-6)
    assert 0 <= row["max_abs_weight_diff"] <= 1e-6 * row["max_abs_weight"]
    assert row["numpy_final_loss"] < row["numpy_first_loss"]


def test_digits_skipped_without_scikit_learn(capsys, monkeypatch):
    monkeypatch.setattr(cli, "_have_sklearn", lambda: False)
    report, err = demo_json(capsys, "--workload", "digits", "--workload", "mlp3_gd",
                            "--epochs", "2")
    assert [r["name"] for r in report["workloads"]] == ["mlp3_gd"]
    assert "digits skipped" in err and 'pip install scikit-learn' in err


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
    (["sweep", "--count", "0"], "--count"),
    (["sweep", "--count", "two"], "--count"),
    (["sweep", "--count", "100000000"], "at most 4096"),
    (["sweep", "--lr-min", "0"], "--lr-min"),
    (["sweep", "--lr-min", "-0.1"], "--lr-min"),
    (["sweep", "--lr-min", "abc"], "--lr-min"),
    (["sweep", "--lr-max", "nan"], "--lr-max"),
    (["sweep", "--lr-max", "inf"], "--lr-max"),
    (["sweep", "--lr-min", "1", "--lr-max", "0.5"], "--lr-min"),
    (["sweep", "--lr-min", "20"], "--lr-min"),  # above the default --lr-max (mlp3_gd: 10)
    (["sweep", "--workload", "nope"], "nope"),
    (["sweep", "--epochs", "0"], "--epochs"),
    (["sweep", "--dtype", "float16"], "float16"),
    (["sweep", "--plot", "sweep.jpg"], "--plot"),
    (["sweep", "--plot", "no/such/folder/sweep.png"], "--plot"),
    (["sweep", "--timeout", "0"], "--timeout"),
    (["sweep", "--client"], "--client"),
    (["sweep", "--bogus"], "--bogus"),
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
    assert "--plot" in out and "pip install matplotlib" in " ".join(out.split())  # as wrapped


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
    assert "pip install matplotlib" in err
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


# ============================================================================= sweep
# `fastnn sweep` (issue 19, "Main job"): K copies of a workload, K log-spaced learning
# rates, one train_many call, timed against K sequential fastnn.train calls.

def sweep(capsys, *args):
    """Run `fastnn sweep ARGS` in-process; returns (status, stdout, stderr)."""
    status = cli.main(["sweep", *args])
    out, err = capsys.readouterr()
    return status, out, err


def sweep_json(capsys, *args, status=0):
    code, out, err = sweep(capsys, "--json", *args)
    assert code == status, err
    return json.loads(out), err


SWEEP_FIELDS = {
    "fastnn_version", "numpy_version", "numba_version", "python_version", "cpu_count",
    "command", "dtype", "workload", "shape", "activation", "loss", "batch_size", "epochs",
    "count", "lr_min", "lr_max", "lrs", "final_losses", "first_losses", "diverged_at",
    "best_index", "best_lr",
    "best_final_loss", "many_seconds", "sequential_seconds", "speedup", "many_runs",
    "sequential_runs", "identical", "threads", "client", "workers", "warmup", "total_seconds",
    "plot",
}


def train_alone(name, lr, epochs, dtype=np.float64):
    """One network of the sweep, trained by fastnn.train independently of the CLI:
    (final loss or None, first non-finite epoch or None)."""
    p = build(name, dtype)
    w, b = p.copy_params()
    try:
        history = fastnn.train(p.x, p.y, w, b, **dict(p.train_kwargs(epochs), lr=lr))
    except fastnn.DivergenceError as exc:
        return None, exc.epoch
    return float(history[-1]), None


def test_sweep_json_fields_losses_and_best(capsys):
    report, _ = sweep_json(capsys, "--epochs", "30", "--count", "6", "--lr-min", "0.01",
                           "--lr-max", "1")
    assert set(report) == SWEEP_FIELDS
    assert report["command"] == "sweep" and report["workload"] == "mlp3_gd"
    assert (report["shape"], report["loss"], report["epochs"], report["count"]) == \
        ("900x5->4->4->1", "mse", 30, 6)
    assert report["lrs"] == pytest.approx(np.geomspace(0.01, 1, 6), rel=1e-15)
    assert report["lr_min"] == 0.01 and report["lr_max"] == pytest.approx(1.0)
    # each lr's final loss is that of fastnn.train on the workload alone (bitwise)
    for lr, final, diverged in zip(report["lrs"], report["final_losses"], report["diverged_at"]):
        assert (final, diverged) == train_alone("mlp3_gd", lr, 30)
    finals = report["final_losses"]
    best = int(np.argmin(finals))
    assert report["best_index"] == best and report["best_lr"] == report["lrs"][best]
    assert report["best_final_loss"] == finals[best]
    # the times: both sides measured, the ratio reported
    assert report["many_seconds"] > 0 and report["sequential_seconds"] > 0
    assert report["speedup"] == pytest.approx(
        report["sequential_seconds"] / report["many_seconds"], rel=1e-12)
    assert 1 <= report["many_runs"] <= cli.MAX_RUNS
    assert 1 <= report["sequential_runs"] <= cli.MAX_RUNS
    assert report["identical"] is True
    assert report["threads"] >= 1 and report["client"] is None and report["workers"] is None
    assert report["plot"] is None and report["warmup"]["dtype"] == "float64"


def test_sweep_default_rates_and_one_train_many_call_per_run(capsys, monkeypatch):
    calls = {"many": [], "train": 0}
    real_many, real_train = fastnn.train_many, fastnn.train

    def spy_many(x, y, weights, biases=None, **kwargs):
        calls["many"].append((weights[0].shape[0], np.copy(kwargs["lr"]),
                              kwargs["on_divergence"], kwargs["epochs"]))
        return real_many(x, y, weights, biases, **kwargs)

    def spy_train(*args, **kwargs):
        calls["train"] += 1
        return real_train(*args, **kwargs)

    monkeypatch.setattr(fastnn, "train_many", spy_many)
    monkeypatch.setattr(fastnn, "train", spy_train)
    report, _ = sweep_json(capsys, "--epochs", "3")
    lr = WORKLOADS["mlp3_gd"].lr
    expected = np.geomspace(lr / cli.SWEEP_SPAN, lr * cli.SWEEP_SPAN, cli.SWEEP_COUNT)
    assert report["count"] == cli.SWEEP_COUNT
    assert report["lrs"] == pytest.approx(expected, rel=1e-15)
    # every timed run: one train_many call with all the rates, frozen on divergence ...
    assert len(calls["many"]) == report["many_runs"]
    for count, rates, on_divergence, epochs in calls["many"]:
        assert count == cli.SWEEP_COUNT and on_divergence == "freeze" and epochs == 3
        assert rates.tolist() == report["lrs"]
    # ... against K sequential train calls (plus one warm-up epoch)
    assert calls["train"] == 1 + cli.SWEEP_COUNT * report["sequential_runs"]


def test_sweep_count_1(capsys):
    report, _ = sweep_json(capsys, "--epochs", "5", "--count", "1", "--lr-min", "0.05")
    assert report["lrs"] == [0.05] and report["best_index"] == 0


def test_sweep_marks_diverged_networks(capsys):
    report, _ = sweep_json(capsys, "--epochs", "300", "--count", "4", "--lr-min", "0.1",
                           "--lr-max", "10")
    for lr, final, diverged in zip(report["lrs"], report["final_losses"], report["diverged_at"]):
        assert (final, diverged) == train_alone("mlp3_gd", lr, 300)
    assert report["diverged_at"][-1] is not None and report["final_losses"][-1] is None
    assert report["diverged_at"][0] is None
    finals = [np.inf if f is None else f for f in report["final_losses"]]
    assert report["best_index"] == int(np.argmin(finals))
    assert report["identical"] is True


def test_sweep_table(capsys):
    status, out, err = sweep(capsys, "--epochs", "300", "--count", "4", "--lr-min", "0.1",
                             "--lr-max", "10")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("fastnn sweep: mlp3_gd (900x5->4->4->1, relu, mse, full batch), "
                               "300 epochs, 4 learning rates from 0.1 to 10")
    rows = [line.split() for line in lines if line.split() and line.split()[0].isdigit()]
    assert [r[0] for r in rows] == ["0", "1", "2", "3"]
    rates = np.geomspace(0.1, 10, 4)
    finals = []
    for cells, lr in zip(rows, rates):
        assert float(cells[1]) == pytest.approx(lr, rel=1e-3)
        final, diverged = train_alone("mlp3_gd", lr, 300)
        if diverged is None:
            assert float(cells[2]) == pytest.approx(final, rel=1e-4)
        else:
            assert " ".join(cells[2:]) == f"diverged at epoch {diverged}"
        finals.append(np.inf if final is None else final)
    best = int(np.argmin(finals))
    assert [r[0] for r in rows if r[-1] == "best"] == [str(best)]
    assert f"best lr: {rates[best]:.4g} (network {best})" in out
    assert re.search(r"time: one train_many call on \d+ threads?: [\d.]+ m?s; 4 sequential "
                     r"fastnn\.train calls: [\d.]+ m?s; train_many is [\d.]+x (faster|slower)\.",
                     out), out
    assert "train_many equals the sequential calls bitwise: yes." in out
    assert "Traceback" not in err


def test_sweep_marks_networks_that_grew(capsys):
    """A finite final loss above the first epoch's (lr too large, short of overflowing) is
    marked, so that 1e+302 does not read as a result."""
    args = ("--count", "8", "--lr-min", "1", "--lr-max", "3.5")
    report, _ = sweep_json(capsys, *args)
    status, out, _ = sweep(capsys, *args)
    assert status == 0
    rows = {int(c[0]): c for c in (line.split() for line in out.splitlines())
            if c and c[0].isdigit()}
    grew = 0
    for k, lr in enumerate(report["lrs"]):
        p = build("mlp3_gd", np.float64)
        w, b = p.copy_params()
        try:
            history = fastnn.train(p.x, p.y, w, b, **dict(p.train_kwargs(None), lr=lr))
        except fastnn.DivergenceError as exc:
            first, final = exc.history[0], None
        else:
            first, final = history[0], history[-1]
        assert report["first_losses"][k] == first
        marked = rows[k][-1] == "(grew)"
        assert marked == (final is not None and final > first), rows[k]
        grew += marked
    assert grew >= 1 and f"; {grew} grew (a final loss above the first epoch's)." in out


def test_sweep_never_picks_a_network_that_grew(capsys):
    """Every network here grows or diverges: none is the best, and the command fails."""
    args = ("--count", "3", "--lr-min", "2.1", "--lr-max", "3")
    report, err = sweep_json(capsys, *args, status=1)
    assert report["best_index"] is None and report["best_lr"] is None
    finals, firsts = report["final_losses"], report["first_losses"]
    assert any(f is not None for f in finals)  # finite, but above the first epoch's loss
    assert all(f is None or f > first for f, first in zip(finals, firsts))
    assert "every learning rate diverged or grew" in err
    status, out, _ = sweep(capsys, *args)
    assert status == 1 and "<- best" not in out and "diverged or grew." in out


def test_sweep_every_network_diverged(capsys):
    report, err = sweep_json(capsys, "--epochs", "300", "--count", "2", "--lr-min", "50",
                             "--lr-max", "100", status=1)
    assert report["best_index"] is None and report["best_lr"] is None
    assert all(d is not None for d in report["diverged_at"])
    assert err.count("\n") == 1 and "every learning rate diverged" in err


def test_sweep_float32_and_other_workload(capsys):
    report, _ = sweep_json(capsys, "--workload", "mlp3_sgd", "--dtype", "float32",
                           "--epochs", "4", "--count", "3")
    assert report["dtype"] == "float32" and report["workload"] == "mlp3_sgd"
    assert report["batch_size"] == 1 and report["identical"] is True
    for lr, final, diverged in zip(report["lrs"], report["final_losses"], report["diverged_at"]):
        assert (final, diverged) == train_alone("mlp3_sgd", lr, 4, np.float32)


def test_sweep_plot_writes_a_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread
    target = tmp_path / "sweep.png"
    status, out, err = sweep(capsys, "--plot", str(target), "--epochs", "300", "--count", "5",
                             "--lr-min", "0.01", "--lr-max", "10")
    assert status == 0, err
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(target)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 800
    assert image[..., :3].std() > 0.05
    assert f"Wrote {target}." in out


def test_sweep_plot_with_json(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "sweep.svg"
    report, err = sweep_json(capsys, "--plot", str(target), "--epochs", "5", "--count", "3")
    assert report["plot"] == str(target)
    assert target.read_text().lstrip().startswith(("<?xml", "<svg"))
    assert str(target) in err


def test_sweep_plot_without_matplotlib(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)

    def must_not_train(*args, **kwargs):
        raise AssertionError("the sweep trained before checking for matplotlib")

    monkeypatch.setattr(fastnn, "train_many", must_not_train)
    target = tmp_path / "sweep.png"
    status, out, err = sweep(capsys, "--plot", str(target), "--epochs", "2")
    assert status == 1 and out == "" and err.count("\n") == 1
    assert 'pip install matplotlib' in err and "Traceback" not in err
    assert not target.exists()


def test_sweep_plot_to_a_folder(capsys, tmp_path):
    target = tmp_path / "sweep.png"
    target.mkdir()  # a folder by that name: caught by the option's check
    status, _, err = sweep(capsys, "--plot", str(target), "--epochs", "2")
    assert status == 2 and "--plot" in err


def test_sweep_ctrl_c_exits_130(capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fastnn, "train_many", interrupted)
    status, _, err = sweep(capsys, "--epochs", "2", "--count", "2")
    assert status == 130 and "fastnn sweep: interrupted" in err


def test_sweep_invalid_fastnn_threads(capsys, monkeypatch):
    monkeypatch.setenv("FASTNN_THREADS", "zero")
    status, out, err = sweep(capsys, "--epochs", "2", "--count", "2")
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and "FASTNN_THREADS" in err and "Traceback" not in err


def test_sweep_help(capsys):
    assert cli.main(["sweep", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--workload", "--lr-min", "--lr-max", "--count", "--epochs", "--plot",
                   "--client", "--timeout", "--json", 'pip install "dask[distributed]"'):
        assert option in " ".join(out.split())  # help lines wrap at any space
    assert cli.main(["--help"]) == 0
    assert "sweep" in capsys.readouterr().out


def test_sweep_subprocess_json(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fastnn", "sweep", "--json", "--epochs", "10", "--count", "3"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["count"] == 3 and report["identical"] is True
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- sweep --client

def closed_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sweep_client_unreachable(capsys, monkeypatch):
    pytest.importorskip("distributed")

    def must_not_train(*args, **kwargs):
        raise AssertionError("the sweep trained without its scheduler")

    monkeypatch.setattr(fastnn, "train_many", must_not_train)
    address = f"tcp://127.0.0.1:{closed_port()}"
    t0 = time.monotonic()
    status, out, err = sweep(capsys, "--client", address, "--timeout", "1", "--epochs", "2")
    assert time.monotonic() - t0 < 30
    assert status == 1 and out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("fastnn sweep: error: cannot reach the Dask scheduler at") and \
        address in err and "Traceback" not in err


@pytest.mark.parametrize("address", ["nonsense::", "foo://bar:1"])
def test_sweep_client_bad_address(address, capsys):
    pytest.importorskip("distributed")
    status, out, err = sweep(capsys, "--client", address, "--timeout", "1", "--epochs", "2")
    assert status == 1 and out == "" and err.count("\n") == 1 and address in err


def test_sweep_client_unreachable_subprocess(tmp_path):
    pytest.importorskip("distributed")
    address = f"127.0.0.1:{closed_port()}"
    proc = subprocess.run(
        [sys.executable, "-m", "fastnn", "sweep", "--client", address, "--timeout", "1"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert address in proc.stderr and "Traceback" not in proc.stderr


def test_sweep_client_without_distributed(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    status, out, err = sweep(capsys, "--client", "tcp://127.0.0.1:8786", "--epochs", "2")
    assert status == 1 and out == "" and err.count("\n") == 1
    assert 'pip install "dask[distributed]"' in err and "dask.distributed" in err


@pytest.fixture(scope="module")
def dask_address():
    pytest.importorskip("distributed")
    from test_cluster import local_cluster
    # no Client in this process: the sweep's own must work alone (as in a fresh process)
    with local_cluster(client=False) as (cluster, _):
        yield cluster.scheduler_address


def test_sweep_on_a_cluster_gives_the_local_losses(capsys, dask_address):
    args = ("--epochs", "300", "--count", "5", "--lr-min", "0.01", "--lr-max", "10")
    remote, err = sweep_json(capsys, "--client", dask_address, *args)
    local, _ = sweep_json(capsys, *args)
    assert remote["client"] == dask_address
    assert remote["workers"] == 2
    for field in ("lrs", "final_losses", "diverged_at", "best_index", "best_lr"):
        assert remote[field] == local[field], field
    assert any(d is not None for d in remote["diverged_at"])  # freeze on the cluster too
    assert remote["identical"] is True
    assert remote["many_runs"] == 1
    assert "Traceback" not in err, err
    # float32: other data than the first sweep's, whose scatter keys may still be in release
    status, out, err = sweep(capsys, "--client", dask_address, "--epochs", "3", "--count", "2",
                             "--lr-min", "0.02", "--dtype", "float32")
    assert status == 0, err
    assert f"time: one train_many call on {dask_address} (2 workers, one run" in out
