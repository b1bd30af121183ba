"""Ctrl-C during a long ``train``: KeyboardInterrupt within 1 s, weights at a completed epoch,
the losses of the completed epochs on the exception (``exc.history``).

A child process trains relu2 (seed 000's network: 64x1000 -> 100 -> 10, SSE,
lr 1e-6) for 10**6 epochs; the parent sends SIGINT after ~1.5 s of training.
The child's ``except KeyboardInterrupt`` handler stamps the time and saves the
weights, then re-raises. The parent checks:

* the handler ran less than 1 s after the signal (the child stamps it; both
  processes read the same system-wide CLOCK_MONOTONIC), and the parent read the
  handler's line less than 1.25 s after the signal (0.25 s of slack for the
  pipe and scheduling on a loaded 2-core machine). Process exit is only bounded
  loosely (10 s, i.e. no hang): interpreter shutdown, not fastnn, dominates it
  (measured up to 0.8 s under load);
* the child died of the KeyboardInterrupt (exit by SIGINT, traceback on stderr);
* the saved weights are finite and equal, bitwise, the state after k epochs, k >= 1
  being the length of the history on the exception: a replay of k epochs by
  ``fastnn.train`` from the same initial weights gives these weights and this history
  (unshuffled epochs are deterministic, and chunking never changes the numbers, so
  the replay is exact), and k - 1 epochs do not (the weights still move every epoch
  after the ~50k epochs the child trains).
  Agreement with ``fastnn.reference`` is tested elsewhere (test_seeds.py,
  test_equivalence.py), on runs short enough for the NumPy loop.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastnn
from helpers import CHILD_PRELUDE, child_line

CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    import fastnn

    out, batch_size = sys.argv[1], (None if sys.argv[2] == "None" else int(sys.argv[2]))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1000))
    y = rng.standard_normal((64, 10))
    w = [rng.standard_normal((1000, 100)), rng.standard_normal((100, 10))]
    # compile (or load from the cache) before the clock starts
    fastnn.train(x, y, [a.copy() for a in w], lr=float(sys.argv[3]), epochs=1,
                 batch_size=batch_size)
    print("start", time.monotonic(), flush=True)
    try:
        fastnn.train(x, y, w, lr=float(sys.argv[3]), epochs=10**6, batch_size=batch_size)
    except KeyboardInterrupt as exc:
        print("caught", time.monotonic(), flush=True)
        np.save(out + "_w0.npy", w[0])
        np.save(out + "_w1.npy", w[1])
        np.save(out + "_history.npy", exc.history)  # the losses of the completed epochs
        raise
    print("finished", flush=True)
""")


LR = 1e-6  # seed 000's


def relu2():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1000))
    y = rng.standard_normal((64, 10))
    w = [rng.standard_normal((1000, 100)), rng.standard_normal((100, 10))]
    return x, y, w


@pytest.mark.parametrize("batch_size", [None, 16])
def test_ctrl_c_returns_within_1s_at_a_completed_epoch(tmp_path, batch_size):
    script = tmp_path / "child.py"
    script.write_text(CHILD_PRELUDE + CHILD)
    out = str(tmp_path / "saved")
    proc = subprocess.Popen([sys.executable, str(script), out, str(batch_size), repr(LR)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        line = child_line(proc, 300)  # waits for imports and compilation
        assert line.startswith("start"), line + proc.stderr.read()
        time.sleep(1.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        line = child_line(proc, 10)
        received = time.monotonic()
        stdout, stderr = proc.communicate(timeout=60)
        exited = time.monotonic()
        stdout = line + stdout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "caught" in stdout, stdout + stderr
    caught = float(stdout.split("caught")[1].split()[0])
    assert caught - sent < 1.0, f"KeyboardInterrupt {caught - sent:.3f} s after SIGINT"
    assert received - sent < 1.25, f"the parent heard of it {received - sent:.3f} s after SIGINT"
    assert exited - sent < 10, f"the process exited {exited - sent:.3f} s after SIGINT"
    assert proc.returncode == -signal.SIGINT, (proc.returncode, stderr)
    assert "KeyboardInterrupt" in stderr
    assert "finished" not in stdout

    saved = [np.load(out + "_w0.npy"), np.load(out + "_w1.npy")]
    assert all(np.isfinite(a).all() for a in saved)
    history = np.load(out + "_history.npy")  # the losses of the completed epochs
    k = len(history)
    assert k >= 1, "no epoch completed"

    # Replay k epochs in one call (chunking never changes the numbers): the saved weights
    # are bitwise those after exactly the epochs whose losses the exception carries.
    x, y, w0 = relu2()
    w = [a.copy() for a in w0]
    replay = fastnn.train(x, y, w, lr=LR, epochs=k, batch_size=batch_size)
    np.testing.assert_array_equal(history, replay)
    for a, b in zip(saved, w):
        np.testing.assert_array_equal(a, b)
    # and not those of the epoch before
    w_before = [a.copy() for a in w0]
    if k > 1:
        fastnn.train(x, y, w_before, lr=LR, epochs=k - 1, batch_size=batch_size)
    assert not all(np.array_equal(a, b) for a, b in zip(saved, w_before))

    print(f"interrupted after {k} epochs; handler {caught - sent:.3f} s, "
          f"heard {received - sent:.3f} s, exit {exited - sent:.3f} s after SIGINT")
