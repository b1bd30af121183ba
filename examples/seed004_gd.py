"""Seed 004, gradient descent: a 5-4-4-1 ReLU network with biases, MSE loss, on 900 rows.

The notebook's loop (In [16]) with its slips fixed, then the fastnn.train call
that replaces it. Before that loop the notebook takes one step cell by cell
(In [9]-[14]); it is the same step. Here the loop starts from the random weights.

    python examples/seed004_gd.py [--epochs 501] [--seed 4]
"""

import numpy as np

import fastnn
from _compare import compare, parse_args


def relu (x):
    return (x>0) * x

# FIX: the notebook's sigmoid helper reads `1 / 1 + np.exp(-x)` (that is 1 + exp(-x));
# the right one is 1 / (1 + np.exp(-x)). Neither loop uses it, so it is left out here.


def numpy_loop(X, y, w1, b1, w2, b2, w3, b3, lr, iterations):
    """In [16], as written but for the marked fix; returns the losses and trained arrays."""
    losses = []
    for i in range(iterations):
        z1 = X@w1+ b1
        a1 = relu(z1)
        # FIX: the notebook has `a2 = a1@w2 + b2` then `a2 = relu(z2)`, a stale z2
        # computed before the loop (In [9]); the step needs this iteration's z2.
        z2 = a1@w2 + b2
        a2 = relu(z2)
        y_pred = a2@w3 + b3
        losses.append(np.mean((y-y_pred)**2))  # the notebook prints it every 100 iterations

        dy_pred = y_pred - y
        dw3 = 1/900*(a2.T@dy_pred)
        db3 = 1/900*(np.sum(dy_pred, axis=0, keepdims=True))
        da2 = dy_pred@w3.T
        dz2 = da2*(a2>0).astype(float)
        dw2 = 1/900*(a1.T@dz2)
        db2 = 1/900*(np.sum(dz2, axis=0, keepdims=True))
        da1 = dz2@w2.T
        dz1 = da1*(a1>0).astype(float)
        dw1 = 1/900*(X.T@dz1)
        db1 = 1/900*(np.sum(dz1, axis=0, keepdims=True))

        w1 = w1 - lr*dw1
        b1 = b1 - lr*db1
        w2 = w2 - lr*dw2
        b2 = b2 - lr*db2
        w3 = w3 - lr*dw3
        b3 = b3 - lr*db3
        # (the notebook also prints np.abs(dw).sum() of each layer every 100 iterations)
    return losses, [w1, w2, w3, b1, b2, b3]


def main():
    args = parse_args(__doc__.splitlines()[0], epochs=501, seed=4)

    # The notebook draws with np.random.randn; a seeded generator makes runs reproducible.
    rng = np.random.default_rng(args.seed)
    w1 = rng.standard_normal((5,4))
    b1 = rng.standard_normal((1,4))
    w2 = rng.standard_normal((4,4))
    b2 = rng.standard_normal((1,4))
    w3 = rng.standard_normal((4,1))
    b3 = rng.standard_normal((1,1))
    X = rng.standard_normal((900,5))
    beta = rng.standard_normal((5,1))
    y = np.log(X@beta + 20)
    lr = 0.1 # learning rate

    def numpy_run():
        # the loop rebinds its arrays (w1 = w1 - ...), so it never modifies these
        return numpy_loop(X, y, w1, b1, w2, b2, w3, b3, lr, args.epochs)

    def fastnn_run():
        w, b = [w1.copy(), w2.copy(), w3.copy()], [b1.copy(), b2.copy(), b3.copy()]
        # loss="mse" reports np.mean((y - y_pred)**2) and steps along the notebook's
        # gradient (of sum((y_pred - y)**2) / (2 * 900)); relu is the default
        return fastnn.train(X, y, w, b, loss="mse", lr=lr, epochs=args.epochs), w + b

    return compare(numpy_run, fastnn_run)


if __name__ == "__main__":
    raise SystemExit(main())
