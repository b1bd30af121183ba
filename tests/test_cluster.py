"""fastnn.train_many(..., client=) on a Dask cluster (issue 19, "On a cluster").

One module-scoped LocalCluster (2 worker processes, 1 thread each) serves every
test; the workers load fastnn's kernels once, in the fixture. The results must
equal the local train_many (itself bitwise fastnn.train per network, see
test_many.py) bitwise. A worker killed mid-run: Dask reruns its task and the
call returns the right numbers, or (retries exhausted) the call raises and the
caller's arrays are untouched.

Every call here scatters data no earlier call scattered (a seed per test), so
that no test depends on another's data being released. Repeated calls with the
same x and y (content-hashed scatter keys once collided with the previous call's
data being released: test_repeated_calls_with_the_same_data), and a Client that is
not the default one, are tested in a child process with its own cluster, killed
with its process group at a deadline.

Run time: ~10 s (cluster start ~2 s, the killed-worker runs ~5 s).
"""

import contextlib
import logging
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

import fastnn  # noqa: E402
from helpers import copies  # noqa: E402
from test_many import OPTIMIZERS, assert_bitwise, bootstrap, fresh_seed, many_net  # noqa: E402

K = 4


@contextlib.contextmanager
def local_cluster(client=True):
    """A LocalCluster of 2 worker processes with 1 thread each, and a Client on it (None with
    client=False: then no Client of this process is the default one)."""
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        if not client:
            cluster.wait_for_workers(2, timeout=60)
            yield cluster, None
            return
        with Client(cluster) as connected:
            yield cluster, connected


def warm(client):
    """Every worker imports fastnn and loads the kernels (from Numba's cache) once."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((9, 4)), rng.standard_normal((9, 2))
    w = [rng.standard_normal((4, 5)), rng.standard_normal((5, 2))]
    for kw in (dict(), dict(batch_size=1), dict(batch_size=4, shuffle=True, seed=0)):
        client.run(fastnn.train, x, y, w, lr=1e-3, epochs=1, **kw)


@pytest.fixture(scope="module")
def cluster():
    with local_cluster() as (cluster, client):
        client.wait_for_workers(2, timeout=60)
        warm(client)
        yield cluster, client


@pytest.fixture
def client(cluster):
    cluster, client = cluster
    client.wait_for_workers(2, timeout=60)  # after a killed worker, its restart
    return client


def both(client, x, y, weights, biases=None, *, optimizer=None, seed=None, **kw):
    """train_many locally and on the cluster, on copies, with fresh optimizers and seeds;
    returns [(history, params, optimizer)] for local and cluster."""
    out = []
    for where in (None, client):
        w, b = copies(weights), copies(biases)
        opt = None if optimizer is None else optimizer()
        extra = {} if opt is None else dict(optimizer=opt)
        if seed is not None:
            extra["seed"] = fresh_seed(seed)
        history = fastnn.train_many(x, y, w, b, client=where, **extra, **kw)
        out.append((history, w + (b or []), opt))
    return out


def assert_same_run(local, remote):
    (h_local, p_local, o_local), (h_remote, p_remote, o_remote) = local, remote
    assert_bitwise(h_remote, h_local, "history")
    for i, (a, e) in enumerate(zip(p_remote, p_local)):
        assert_bitwise(a, e, f"parameter {i}")
    if o_local is not None:
        for i, (a, e) in enumerate(zip(o_remote.state(), o_local.state())):
            assert_bitwise(a, e, f"optimizer state {i}")


def data(seed, count=K, dtype=np.float64, depth=2, per_network=False):
    """many_net's networks on data of its own (no other call scatters the same arrays)."""
    x, y, w, b = many_net(depth, dtype, count=count, seed=seed)
    if per_network:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((count,) + x.shape).astype(dtype)
        y = rng.standard_normal((count,) + y.shape).astype(dtype)
    return x, y, w, b


CONFIGS = {
    "shuffle-lr-per-network": (dict(seed=101), dict(
        loss="mse", lr=np.array([0.01, 0.02, 0.05, 0.1]), batch_size=4, shuffle=True,
        seed=lambda: np.random.SeedSequence(5))),
    "x-per-network": (dict(seed=102, per_network=True), dict(
        activation="tanh", loss="mse", lr=0.05, batch_size=5)),
    "rows-shuffle": (dict(seed=103), dict(
        loss="mse", lr=0.05, batch_size=3, shuffle=True, seed=lambda: 9,
        rows=bootstrap(13, count=K, size=10))),
    "rows-full-batch": (dict(seed=104), dict(loss="mse", lr=0.05, rows=bootstrap(13, count=K))),
    "adam-float32": (dict(seed=105, dtype=np.float32, count=3), dict(
        activation="tanh", loss="mse", optimizer=OPTIMIZERS["adam"], batch_size=4)),
    "sgd-momentum-one-row": (dict(seed=106, count=3), dict(
        loss="mse", optimizer=OPTIMIZERS["sgd-momentum"], batch_size=1)),
    "one-row-generator": (dict(seed=107, depth=3), dict(
        loss="sse", lr=0.005, batch_size=1, shuffle=True,
        seed=lambda: np.random.default_rng(77))),
}


@pytest.mark.parametrize("task_seconds", [0.0, 0.1], ids=["task-per-network", "default"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_equals_local(config, task_seconds, client):
    make, kw = CONFIGS[config]
    x, y, w, b = data(**{**make, "seed": make["seed"] * 10 + int(task_seconds * 10)})
    local, remote = both(client, x, y, w, b, epochs=12, task_seconds=task_seconds, **kw)
    assert remote[0].shape == (w[0].shape[0], 12) and np.isfinite(remote[0]).all()
    assert_same_run(local, remote)
    assert not np.array_equal(remote[1][0], w[0])  # it trained


def test_two_calls_continue_like_one(client):
    # The second call passes x and y stacked per network (the same numbers): a new scatter
    # key, so this test does not depend on the repeated-data test below.
    x, y, w, b = data(seed=201)
    make = OPTIMIZERS["adam-shared"]
    local, _ = both(None, x, y, w, b, optimizer=make, loss="mse", epochs=10, batch_size=5)
    opt = make()
    w2, b2 = copies(w), copies(b)
    first = fastnn.train_many(x, y, w2, b2, optimizer=opt, loss="mse", epochs=4, batch_size=5,
                              client=client)
    second = fastnn.train_many(np.stack([x] * K), np.stack([y] * K), w2, b2, optimizer=opt,
                               loss="mse", epochs=6, batch_size=5, client=client)
    assert_same_run(local, (np.concatenate([first, second], axis=1), w2 + b2, opt))


@contextlib.contextmanager
def recording(client, monkeypatch):
    """Records the groups of networks submitted as tasks, the submit options and the scatters."""
    seen = dict(groups=[], pure=[], scatters=[])
    submit, scatter = client.submit, client.scatter

    def recording_submit(fn, *args, **kwargs):
        seen["groups"].append(np.asarray(args[2]).tolist())  # train_group(x, y, group, ...)
        seen["pure"].append(kwargs.get("pure"))
        return submit(fn, *args, **kwargs)

    def recording_scatter(data, *args, **kwargs):
        seen["scatters"].append((len(data), kwargs.get("broadcast")))
        return scatter(data, *args, **kwargs)

    monkeypatch.setattr(client, "submit", recording_submit)
    monkeypatch.setattr(client, "scatter", recording_scatter)
    yield seen


@pytest.mark.parametrize("case, task_seconds, expected", [
    (0, 1e-9, [[0], [1], [2], [3], [4], [5]]),   # small: one network per task
    (1, 1e9, [[0, 1, 2, 3, 4, 5]]),             # large: one task
    (2, None, [[0, 1, 2, 3, 4, 5]]),            # default 0.1 s: these networks are tiny
])
def test_task_cutting(case, task_seconds, expected, client, monkeypatch):
    x, y, w, b = data(seed=300 + case, count=6)
    kw = {} if task_seconds is None else dict(task_seconds=task_seconds)
    with recording(client, monkeypatch) as seen:
        history = fastnn.train_many(x, y, copies(w), copies(b), lr=0.05, epochs=5,
                                    client=client, **kw)
    assert seen["groups"] == expected
    assert seen["pure"] == [False] * len(expected)  # identical tasks are never merged
    assert seen["scatters"] == [(2, True)]         # x and y, once, to every worker
    assert history.shape == (6, 5)


def test_task_cutting_by_estimated_work(client, monkeypatch):
    # In between: consecutive groups of about task_seconds of estimated work each.
    from fastnn import _cluster, _driver
    x, y, w, b = data(seed=310, count=6)
    per_network = 40 * _driver.work_per_epoch_of([4, 5, 2], 13, 13) / _cluster.RATE
    with recording(client, monkeypatch) as seen:
        fastnn.train_many(x, y, copies(w), copies(b), lr=0.05, epochs=40, client=client,
                          task_seconds=2.5 * per_network)
    assert seen["groups"] == [[0, 1, 2], [3, 4, 5]]


def test_identical_networks_are_distinct_tasks(client):
    x, y, w, b = data(seed=320, count=4)
    for a in w + b:
        a[:] = a[0]
    local, remote = both(client, x, y, w, b, lr=0.05, epochs=6, task_seconds=0)
    assert_same_run(local, remote)
    assert all(np.array_equal(remote[0][0], remote[0][k]) for k in range(4))


def test_progress_on_cluster(client, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    x, y, w, b = data(seed=330)
    history = fastnn.train_many(x, y, copies(w), copies(b), lr=0.05, epochs=7, client=client,
                                progress=True, task_seconds=0)
    last = capsys.readouterr().err.rstrip("\n").split("\r")[-1]
    assert last.startswith(f"network-epoch {K * 7}/{K * 7}  mean loss "), last
    assert history.shape == (K, 7)


def test_progress_with_a_frozen_task_warns_nothing(client, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    x, y, w, b = data(seed=331)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = fastnn.train_many(x, y, copies(w), copies(b),
                                    lr=np.array([0.05, 50.0, 0.05, 0.05]),
                                    on_divergence="freeze", progress=True, task_seconds=0,
                                    client=client, **DIVERGE)
    assert np.isnan(history[1, -1])


# ----------------------------------------------------------------------------- divergence

DIVERGE = dict(activation="tanh", loss="mse", epochs=200)


def test_divergence_freeze_on_cluster(client):
    x, y, w, b = data(seed=400)
    lr = np.array([0.05, 50.0, 0.1, 50.0])
    local, remote = both(client, x, y, w, b, lr=lr, on_divergence="freeze", task_seconds=0,
                         **DIVERGE)
    assert_same_run(local, remote)
    assert np.isnan(remote[0][1]).any() and np.isfinite(remote[0][0]).all()


def test_divergence_raise_on_cluster(client):
    x, y, w, b = data(seed=401)
    lr = np.array([0.05, 50.0, 0.1, 0.05])
    w_local, b_local = copies(w), copies(b)
    with pytest.raises(fastnn.DivergenceError) as local:
        fastnn.train_many(x, y, w_local, b_local, lr=lr, **DIVERGE)
    w_remote, b_remote = copies(w), copies(b)
    with pytest.raises(fastnn.DivergenceError) as remote:
        fastnn.train_many(x, y, w_remote, b_remote, lr=lr, client=client, task_seconds=0,
                          **DIVERGE)
    assert remote.value.networks == local.value.networks == [1]
    assert remote.value.epochs == local.value.epochs
    e = local.value.epochs[0]
    h = remote.value.history
    assert h.shape == (K, 200)
    assert_bitwise(h[1, :e], local.value.history[1, :e], "history of the diverged network")
    assert np.isnan(h[1, e:]).all()
    for i, (a, c) in enumerate(zip(w_remote + b_remote, w_local + b_local)):
        assert_bitwise(a[1], c[1], f"parameter {i} of the diverged network")
    # the others: at a completed epoch that their history covers
    for k in (0, 2, 3):
        n = int(np.isfinite(h[k]).sum())
        assert n >= e and np.isfinite(h[k, :n]).all()
        wk, bk = [a[k].copy() for a in w], [a[k].copy() for a in b]
        expected = fastnn.train(x, y, wk, bk, lr=lr[k], activation="tanh", loss="mse", epochs=n)
        assert_bitwise(h[k, :n], expected, f"history of network {k}")
        for i, (a, c) in enumerate(zip(w_remote + b_remote, wk + bk)):
            assert_bitwise(a[k], c, f"parameter {i} of network {k}")


# ----------------------------------------------------------------------------- callback

def test_callback_with_client_is_a_type_error(client):
    x, y, w, b = data(seed=500)
    wm, bm = copies(w), copies(b)
    with pytest.raises(TypeError, match="callback"):
        fastnn.train_many(x, y, wm, bm, lr=0.05, epochs=3, client=client,
                          callback=lambda e, losses: None)
    for a, a0 in zip(wm + bm, w + b):
        assert_bitwise(a, a0, "parameters")


# ----------------------------------------------------------------------------- faults

def long_problem(seed):
    """4 networks of 64 x 200 -> 50 -> 10 in batches of 16, ~1 s each on a worker."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((64, 200)), rng.standard_normal((64, 10))
    w = [rng.standard_normal((K, 200, 50)) / 15, rng.standard_normal((K, 50, 10)) / 7]
    return x, y, w, dict(lr=np.linspace(1e-4, 3e-4, K), epochs=6000, batch_size=16,
                         task_seconds=1.0)  # 4 tasks of one network: 2 run, 2 wait


def kill_a_busy_worker(client, pids, killed, delay=0.3):
    """SIGKILL a worker process that has been running a train_group task for ``delay`` s and
    still is (checked just before the kill)."""
    def busy():
        return [w for w, keys in client.processing().items()
                if any("train_group" in str(k) for k in keys)]

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        first = busy()
        if first:
            time.sleep(delay)
            still = [w for w in busy() if w in first]
            if still:
                os.kill(pids[still[0]], signal.SIGKILL)
                killed.append(still[0])
                return
        time.sleep(0.02)


def run_with_a_kill(client, x, y, w, kw):
    """train_many on copies with a worker killed mid-run: (history or exception, params,
    seconds, killed workers)."""
    pids = client.run(os.getpid)
    assert len(pids) == 2
    killed = []
    killer = threading.Thread(target=kill_a_busy_worker, args=(client, pids, killed),
                              daemon=True)
    wm = copies(w)
    killer.start()
    t0 = time.perf_counter()
    try:
        result = fastnn.train_many(x, y, wm, client=client, **kw)
    except Exception as exc:  # noqa: BLE001 - any error is acceptable, judged below
        result = exc
    seconds = time.perf_counter() - t0
    killer.join(timeout=60)
    return result, wm, seconds, killed


def test_killed_worker_rerun_gives_the_local_result(client):
    x, y, w, kw = long_problem(600)
    result, wm, seconds, killed = run_with_a_kill(client, x, y, w, kw)
    assert killed, "no worker was running a task (the run was too short to kill)"
    if isinstance(result, Exception):  # allowed: a clear error, and the arrays untouched
        assert str(result), repr(result)
        for a, a0 in zip(wm, w):
            assert_bitwise(a, a0, "parameters after the failed call")
        print(f"the call raised {type(result).__name__}: {result}")
        return
    w_local = copies(w)
    expected = fastnn.train_many(x, y, w_local, **{k: v for k, v in kw.items()
                                                  if k != "task_seconds"})
    assert_bitwise(result, expected, "history after a killed worker")
    for i, (a, e) in enumerate(zip(wm, w_local)):
        assert_bitwise(a, e, f"parameter {i} after a killed worker")
    print(f"returned the local result in {seconds:.1f} s after killing {killed[0]}")


def test_killed_worker_without_retries_raises_and_leaves_the_arrays(cluster, client):
    scheduler = cluster[0].scheduler
    allowed = scheduler.allowed_failures
    scheduler.allowed_failures = 0  # Dask gives up on the first death of a task's worker
    try:
        x, y, w, kw = long_problem(601)
        opt = fastnn.SGD(lr=kw.pop("lr"), momentum=0.5)
        result, wm, seconds, killed = run_with_a_kill(client, x, y, w, dict(kw, optimizer=opt))
    finally:
        scheduler.allowed_failures = allowed
    assert killed, "no worker was running a task (the run was too short to kill)"
    assert isinstance(result, Exception), "the call returned although its task was lost"
    assert type(result).__name__ == "KilledWorker" or "worker" in str(result).lower(), \
        repr(result)
    for a, a0 in zip(wm, w):
        assert_bitwise(a, a0, "parameters after the failed call")
    assert opt.state() == (None, 0), "the optimizer kept a state from a failed call"


# ----------------------------------------------------------------------------- in a child
# Two cases whose failure may hang, or that need a process without a default Client: each in a
# child process with its own LocalCluster, killed with its process group when it falls silent.

CHILD_START = 30  # seconds for the child's first line (imports, cluster start)
CHILD_STEP = 8    # seconds for each next line (a call takes ~20 ms; a hung one never ends)

CHILD_HEAD = textwrap.dedent("""
    import logging
    import numpy as np
    import fastnn
    from distributed import Client, LocalCluster

    def problem():
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((13, 4)), rng.standard_normal((13, 2))
        w = [rng.standard_normal((4, 4, 5)) / 2, rng.standard_normal((4, 5, 2)) / 2]
        return x, y, w, fastnn.train_many(x, y, [a.copy() for a in w], lr=0.01, epochs=20)

    def call(i, client, x, y, w, local):
        print("calling", i, flush=True)
        try:
            h = fastnn.train_many(x, y, [a.copy() for a in w], lr=0.01, epochs=20,
                                  client=client)
        except Exception as exc:
            print("call", i, "failed:", type(exc).__name__, str(exc).splitlines()[0], flush=True)
            return False
        print("call", i, "ok" if np.array_equal(h, local) else "WRONG", flush=True)
        return True
""")

REPEAT_CHILD = CHILD_HEAD + textwrap.dedent("""
    if __name__ == "__main__":
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None, silence_logs=logging.CRITICAL) as cluster, \\
                Client(cluster) as client:
            x, y, w, local = problem()
            for i in range(8):
                if not call(i, client, x, y, w, local):
                    break
""")

NOT_DEFAULT_CHILD = CHILD_HEAD + textwrap.dedent("""
    if __name__ == "__main__":
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None, silence_logs=logging.CRITICAL) as cluster, \\
                Client(cluster.scheduler_address, set_as_default=False) as client:
            x, y, w, local = problem()
            call(0, client, x, y, w, local)
""")


def run_child(tmp_path, source, calls):
    """Run source in a child (its own session); returns its stdout lines, read until ``calls``
    results, a failure or a silence (CHILD_START, then CHILD_STEP seconds); then the child's
    process group is killed."""
    script = tmp_path / "child.py"
    script.write_text(source)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    received = queue.Queue()
    reader = threading.Thread(target=lambda: [received.put(line.strip())
                                              for line in proc.stdout], daemon=True)
    reader.start()
    lines = []
    try:
        while True:
            try:
                line = received.get(timeout=CHILD_STEP if lines else CHILD_START)
            except queue.Empty:
                break
            lines.append(line)
            if " failed: " in line or line.startswith(f"call {calls - 1} "):
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the child and its cluster's processes
        proc.wait()
        reader.join(timeout=10)
        proc.stdout.close()
    return lines


def test_repeated_calls_with_the_same_data(tmp_path):
    lines = run_child(tmp_path, REPEAT_CHILD, 8)
    results = [line for line in lines if line.startswith("call ")]
    assert len(results) == 8, f"a call failed or hung: {lines[-2:]}"
    assert all(line.endswith(" ok") for line in results), "\n".join(results)


def test_a_client_that_is_not_the_default(tmp_path):
    lines = run_child(tmp_path, NOT_DEFAULT_CHILD, 1)
    assert [line for line in lines if line.startswith("call ")] == ["call 0 ok"], lines
