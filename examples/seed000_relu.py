"""Seed 000 ("Redes Neuronales - Numpy"): a 2-layer ReLU network, no biases, SSE loss.

The notebook's loop (In [20]), then the fastnn.train call that replaces it.
The notebook runs 400 iterations (not 500 like seeds 001 and 003).

    python examples/seed000_relu.py [--epochs 400] [--seed 0]
"""

import numpy as np

import fastnn
from _compare import compare, parse_args


def numpy_loop(x, y, w1, w2, learning_rate, iterations):
    """In [20], as written; trains w1 and w2 in place and returns the losses."""
    losses = []
    for t in range(iterations):
        # Forward pass: compute predicted y
        z1 = x.dot(w1)
        h_relu = np.maximum(z1, 0)
        y_pred = h_relu.dot(w2)

        # Compute and print loss
        loss = np.square(y_pred - y).sum()
        losses.append(loss)  # the notebook prints it: print(t, loss)

        # Backprop to compute gradients of w1 and w2 with respect to loss
        grad_y_pred = 2.0 * (y_pred - y)
        grad_w2 = h_relu.T.dot(grad_y_pred)
        grad_h_relu = grad_y_pred.dot(w2.T)
        grad_h = grad_h_relu.copy()
        grad_h[z1 < 0] = 0
        grad_w1 = x.T.dot(grad_h)

        # Update weights
        w1 -= learning_rate * grad_w1
        w2 -= learning_rate * grad_w2
    return losses


def main():
    args = parse_args(__doc__.splitlines()[0], epochs=400, seed=0)

    # N is batch size; D_in is input dimension;
    # H is hidden dimension; D_out is output dimension.
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
