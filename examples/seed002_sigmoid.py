"""Seed 002 ("Lecture 4 Backpropagation"): 2-layer sigmoid network, hidden 1000, SSE loss.

The notebook's loop (In [9]), then the fastnn.train call that replaces it.
2000 iterations of a 64x1000 @ 1000x1000 network: the NumPy loop takes a while
(see the README in this folder); --epochs shortens the run.

    python examples/seed002_sigmoid.py [--epochs 2000] [--seed 2]
"""

import numpy as np

import fastnn
from _compare import compare, parse_args


def numpy_loop(x, y, w1, w2, iterations):
    """In [9], as written; trains w1 and w2 in place and returns the losses."""
    losses = []
    for t in range(iterations):
        h = 1 / (1 + np.exp(-x.dot(w1)))
        y_pred = h.dot(w2)
        loss = np.square(y_pred - y).sum()
        losses.append(loss)  # the notebook prints it every 100 iterations

        grad_y_pred = 2.0 * (y_pred - y)
        grad_w2 = h.T.dot(grad_y_pred)
        grad_h = grad_y_pred.dot(w2.T)
        grad_w1 = x.T.dot(grad_h * h * (1 - h))

        w1 -= 1e-4 * grad_w1
        w2 -= 1e-4 * grad_w2
    return losses


def main():
    args = parse_args(__doc__.splitlines()[0], epochs=2000, seed=2)

    N, D_in, H, D_out = 64, 1000, 1000, 10
    # The notebook draws with numpy.random.randn; a seeded generator makes runs reproducible.
    rng = np.random.default_rng(args.seed)
    x, y = rng.standard_normal((N, D_in)), rng.standard_normal((N, D_out))
    # Changed initial point: with the notebook's unit-variance weights (randn) the sigmoids
    # saturate and the run diverges on 4 of the draws default_rng(0)..(5), this default
    # draw 2 among them (the loss overflows near iteration 500). Weights 0.1 x randn, the
    # initial point fastnn/_workloads.py documents for this workload, converge.
    w1, w2 = 0.1 * rng.standard_normal((D_in, H)), 0.1 * rng.standard_normal((H, D_out))

    def numpy_run():
        w = [w1.copy(), w2.copy()]
        return numpy_loop(x, y, *w, args.epochs), w

    def fastnn_run():
        w = [w1.copy(), w2.copy()]
        # SSE (sum of squares, gradient 2 (y_pred - y)) is the default loss
        return fastnn.train(x, y, w, activation="sigmoid", lr=1e-4, epochs=args.epochs), w

    return compare(numpy_run, fastnn_run)


if __name__ == "__main__":
    raise SystemExit(main())
