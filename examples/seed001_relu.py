"""Seed 001 ("Two layer neural network by numpy"): 2-layer ReLU network, no biases, SSE loss.

The notebook's loop (In [14]), then the fastnn.train call that replaces it.

    python examples/seed001_relu.py [--epochs 500] [--seed 1]
"""

import numpy as np

import fastnn
from _compare import compare, parse_args


def numpy_loop(x, y, w1, w2, learning_rate, iterations):
    """In [14], as written; trains w1 and w2 in place and returns the losses."""
    losses = []
    for it in range(iterations):
        # Forward pass
        h = x.dot(w1)  # x * w1
        h_relu = np.maximum(h, 0)  # relu function
        y_pred = h_relu.dot(w2)  # N*D_out

        # compute loss
        loss = np.square(y_pred - y).sum()
        losses.append(loss)  # the notebook prints it: print(it, loss)

        # Backward pass
        # compute the gradient
        grad_y_pred = 2.0 * (y_pred - y)  # d_loss/d_y_pred
        grad_w2 = h_relu.T.dot(grad_y_pred)
        grad_h_relu = grad_y_pred.dot(w2.T)

        grad_h = grad_h_relu.copy()
        grad_h[h < 0] = 0
        grad_w1 = x.T.dot(grad_h)

        # update weights of w1 and w2
        w1 -= learning_rate * grad_w1
        w2 -= learning_rate * grad_w2
    return losses


def main():
    args = parse_args(__doc__.splitlines()[0], epochs=500, seed=1)

    N, D_in, H, D_out = 64, 1000, 100, 10
    # The notebook draws with np.random.randn; a seeded generator makes runs reproducible.
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((N, D_in))
    y = rng.standard_normal((N, D_out))
    w1 = rng.standard_normal((D_in, H))
    w2 = rng.standard_normal((H, D_out))
    learning_rate = 1e-6

    def numpy_run():
        w = [w1.copy(), w2.copy()]
        return numpy_loop(x, y, *w, learning_rate, args.epochs), w

    def fastnn_run():
        w = [w1.copy(), w2.copy()]
        # relu and the SSE loss (sum of squares, gradient 2 (y_pred - y)) are the defaults
        return fastnn.train(x, y, w, lr=learning_rate, epochs=args.epochs), w

    return compare(numpy_run, fastnn_run)


if __name__ == "__main__":
    raise SystemExit(main())
