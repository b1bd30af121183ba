"""Full batch over two threads (kernels/team.py): same bits on one thread or two.

A full-batch run of a small-layer network with at least team.MIN_ROWS rows splits
each epoch's batch into two fixed parts; the driver runs them on two threads when
a second CPU is free, else both in the calling thread. The arithmetic depends on
the parts only, so the two must agree bitwise, and both must match the NumPy
reference with the tolerances of test_equivalence (the parts change only the
order of the gradient sums, as another summation order would).
"""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from numba import config
from test_divergence import assert_same, check_divergence
from test_equivalence import RTOL, assert_history_close, assert_moved, assert_params_close

import fastnn
from fastnn import _driver, reference
from fastnn import kernels as K

DTYPES = [np.float64, np.float32]


def net(seed, widths, n_rows, dtype, biases=True):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_rows, widths[0])).astype(dtype)
    y = rng.standard_normal((n_rows, widths[-1])).astype(dtype)
    w = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype)
         for a, b in zip(widths, widths[1:])]
    b = [(0.1 * rng.standard_normal(n)).astype(dtype) for n in widths[1:]] if biases else None
    return x, y, w, b


def copies(arrays):
    return None if arrays is None else [a.copy() for a in arrays]


@pytest.fixture
def members(monkeypatch):
    """Records which threads ran train_team members, per call of fastnn.train."""
    seen = []
    member = _driver._Team._member

    def spy(self, team, *args):
        seen.append((int(team[K.team.MEMBER]), int(team[K.team.MEMBERS]),
                     threading.get_ident()))
        return member(self, team, *args)

    monkeypatch.setattr(_driver._Team, "_member", spy)
    return seen


def train(threads, monkeypatch, x, y, w, b, **kw):
    monkeypatch.setattr(_driver, "TEAM_THREADS", threads)
    w, b = copies(w), copies(b)
    history = fastnn.train(x, y, w, b, **kw)
    return history, w + (b or [])


@pytest.mark.parametrize("widths, batch, n_rows, in_order, expected", [
    ([5, 4, 4, 1], None, 900, True, (452, 448)),   # mlp3_gd
    ([5, 4, 4, 1], None, 512, True, (256, 256)),
    ([3, 7, 2], None, 515, True, (260, 255)),
    ([5, 4, 4, 1], None, 511, True, ()),           # too few rows
    ([5, 4, 4, 1], None, 900, False, ()),          # shuffled
    ([5, 4, 4, 1], 450, 900, True, ()),            # mini-batches
    ([5, 4, 4, 1], 1000, 900, True, (452, 448)),   # a batch larger than the data is full
    ([64, 64, 1], None, 900, True, ()),            # 64 x 64 x 900 goes through BLAS
])
def test_parts(widths, batch, n_rows, in_order, expected):
    batch = n_rows if batch is None else batch
    assert K.team_parts(widths, batch, n_rows, in_order) == expected


CASES = [  # widths, activation, loss, biases, rows, lr
    ([5, 4, 4, 1], "relu", "mse", True, 900, 0.1),
    ([3, 7, 2], "sigmoid", "sse", False, 515, 1e-3),
    ([6, 5, 3, 4, 2], ["tanh", "relu", "sigmoid"], "mse", True, 640, 0.05),
    ([4, 3], "identity", "sse", True, 777, 1e-4),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_one_thread_or_two_same_bits_and_reference(case, dtype, monkeypatch, members):
    widths, act, loss, biases, n_rows, lr = CASES[case]
    x, y, w, b = net(case, widths, n_rows, dtype, biases)
    kw = dict(activation=act, loss=loss, lr=lr, epochs=60)
    h2, p2 = train(2, monkeypatch, x, y, w, b, **kw)
    two = list(members)
    members.clear()
    h1, p1 = train(1, monkeypatch, x, y, w, b, **kw)
    one = list(members)
    # the paths really ran: one member on one thread, or two on two threads
    assert one and {(m, n) for m, n, _ in one} == {(0, 1)}
    monkeypatch.setattr(_driver, "TEAM_THREADS", 2)
    if _driver._team_threads() >= 2:  # two usable CPUs (and FASTNN_THREADS allows two)
        assert {(m, n) for m, n, _ in two} == {(0, 2), (1, 2)}
        assert len({t for *_, t in two}) == 2
    assert_same([h2] + p2, [h1] + p1)
    w_ref, b_ref = copies(w), copies(b)
    h_ref = reference.train(x, y, w_ref, b_ref, **kw)
    p_ref = w_ref + (b_ref or [])
    rtol = RTOL[np.dtype(dtype)]
    assert_history_close(h2, h_ref, rtol)
    assert_params_close(p2, p_ref, rtol)
    assert_moved(w + (b or []), p_ref, rtol)


def test_chunks_and_callbacks_same_bits(monkeypatch):
    """A callback every 7 epochs cuts the run into chunks: each starts a new team call."""
    x, y, w, b = net(7, [5, 4, 4, 1], 900, np.float64)
    kw = dict(activation="relu", loss="mse", lr=0.1, epochs=50)
    whole, p_whole = train(2, monkeypatch, x, y, w, b, **kw)
    calls = []
    cut, p_cut = train(2, monkeypatch, x, y, w, b, callback=lambda e, v: calls.append(e),
                       callback_every=7, **kw)
    assert calls == list(range(6, 50, 7))
    assert_same([cut] + p_cut, [whole] + p_whole)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference overflows on purpose
@pytest.mark.parametrize("threads", [1, 2])
def test_divergence(threads, monkeypatch):
    monkeypatch.setattr(_driver, "TEAM_THREADS", threads)
    x, y, w, b = net(3, [5, 4, 4, 1], 600, np.float64)
    x *= 3.0  # a linear network at this lr overflows after a few epochs (5 measured)
    assert K.team_parts([5, 4, 4, 1], 600, 600) == (300, 300)
    err = check_divergence(fastnn.train, x, y, w, b, epochs=400, activation="identity",
                           loss="mse", lr=0.3)
    assert err.epoch > 2  # a few finite epochs first: the replay has something to check


def test_concurrent_trainings_same_bits(monkeypatch):
    """Four eligible trainings from four threads at once: at most one team has two
    threads at a time (the others run both parts in their own thread), and every result
    is bitwise the sequential one."""
    monkeypatch.setattr(_driver, "TEAM_THREADS", 2)
    jobs = [net(20 + i, [5, 4, 4, 1], 600 + 64 * i, np.float64) for i in range(4)]
    kw = dict(activation="relu", loss="mse", lr=0.05, epochs=300)
    alone = [train(2, monkeypatch, *job, **kw) for job in jobs]
    out = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def work(i):
        x, y, w, b = jobs[i]
        w, b = copies(w), copies(b)
        barrier.wait()
        out[i] = (fastnn.train(x, y, w, b, **kw), w + b)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    for (h, p), (h_alone, p_alone) in zip(out, alone):
        assert_same([h] + p, [h_alone] + p_alone)


@pytest.mark.skipif(config.DISABLE_JIT, reason="interpreted kernels run one member only")
def test_partner_failure_raises_and_never_hangs(monkeypatch):
    """If the second thread fails, train raises its error (no deadlock) and the user's
    arrays keep their values from before the failed call."""
    monkeypatch.setattr(_driver, "TEAM_THREADS", 2)
    if _driver._team_threads() < 2:
        pytest.skip("one CPU: no second thread")
    real = K.train_team

    def flaky(losses, params, work, table, cfg, lr, x, y, team, *rest):
        if team[K.team.MEMBER] == 1:
            raise RuntimeError("partner failed")
        return real(losses, params, work, table, cfg, lr, x, y, team, *rest)

    monkeypatch.setattr(K, "train_team", flaky)
    x, y, w, b = net(5, [5, 4, 4, 1], 900, np.float64)
    w_user, b_user = copies(w), copies(b)
    result = {}

    def call():
        try:
            fastnn.train(x, y, w_user, b_user, activation="relu", loss="mse", lr=0.1,
                         epochs=200)
        except RuntimeError as exc:
            result["error"] = exc

    t = threading.Thread(target=call)
    t.start()
    t.join(timeout=120)
    assert not t.is_alive(), "train hung after its partner thread failed"
    assert "partner failed" in str(result.get("error"))
    assert_same(w_user + b_user, w + b)
    # and the next call works normally
    monkeypatch.setattr(K, "train_team", real)
    h, p = train(2, monkeypatch, x, y, w, b, activation="relu", loss="mse", lr=0.1, epochs=20)
    h1, p1 = train(1, monkeypatch, x, y, w, b, activation="relu", loss="mse", lr=0.1, epochs=20)
    assert_same([h] + p, [h1] + p1)


def test_fastnn_threads_environment_variable(monkeypatch, members):
    x, y, w, b = net(9, [5, 4, 4, 1], 600, np.float64)
    kw = dict(activation="relu", loss="mse", lr=0.1, epochs=5)
    monkeypatch.setenv("FASTNN_THREADS", "1")
    train(2, monkeypatch, x, y, w, b, **kw)
    assert members and {(m, n) for m, n, _ in members} == {(0, 1)}
    small = net(10, [3, 2], 10, np.float64)  # no team here: the variable is checked anyway
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv("FASTNN_THREADS", bad)
        for xs, ys, ws, bs in ((x, y, w, b), small):
            w_user, b_user = copies(ws), copies(bs)
            with pytest.raises(ValueError, match=r"FASTNN_THREADS must be an integer >= 1, "
                                                 r"found '" + bad.replace(".", r"\.") + "'"):
                fastnn.train(xs, ys, w_user, b_user, **kw)
            assert_same(w_user + b_user, ws + bs)


FORK_CODE = """
import os, signal, sys
import numpy as np
import fastnn
from fastnn import _driver
rng = np.random.default_rng(0)
x, y = rng.standard_normal((900, 5)), rng.standard_normal((900, 1))
w0 = [rng.standard_normal((5, 4)), rng.standard_normal((4, 4)), rng.standard_normal((4, 1))]
def run():
    w = [a.copy() for a in w0]
    h = fastnn.train(x, y, w, activation="relu", loss="mse", lr=0.05, epochs=200)
    return h, w
h, w = run()  # the parent starts its team's pool thread
assert _driver._team_pool is not None
pid = os.fork()
if pid == 0:
    signal.alarm(60)  # a child waiting for a pool thread it does not have would hang here
    h2, w2 = run()
    ok = np.array_equal(h, h2) and all(np.array_equal(a, c) for a, c in zip(w, w2))
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
print("child status", status)
sys.exit(0 if status == 0 else 1)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_forked_child_trains(tmp_path):
    """A child forked after a two-thread run trains again, with the same results."""
    env = dict(os.environ, FASTNN_THREADS="2")
    proc = subprocess.run([sys.executable, "-c", FORK_CODE], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
