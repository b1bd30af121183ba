"""Seed 003 ("Simple neural network with numpy only"): 2-layer ReLU network, no biases, SSE loss.

The notebook's training loop (In [20]), then the fastnn.train call that replaces it.
Before that loop the notebook takes one step cell by cell (In [8]-[17]); it is the
same step, so the notebook's whole run is 501 iterations from its random start.
Here the loop starts from the random weights.

    python examples/seed003_relu.py [--epochs 500] [--seed 3]
"""

import numpy as np

import fastnn
from _compare import compare, parse_args


def numpy_loop(x, y, w1, w2, learning_rate, iterations):
    """In [20], as written; trains w1 and w2 in place and returns the losses."""
    losses = []
    for t in range(iterations):
        h = x.dot(w1)
        h_relu = np.maximum(h, 0)
        ypred = h_relu.dot(w2)
        loss = np.square(ypred - y).sum()
        losses.append(loss)  # the notebook prints it every 10 iterations
        grad_loss_ypred = 2.0 * (ypred - y)
        grad_ypred_w2 = h_relu
        grad_loss_w2 = grad_ypred_w2.T.dot(grad_loss_ypred)
        grad_ypred_hrelu = w2
        grad_loss_hrelu = grad_loss_ypred.dot(grad_ypred_hrelu.T)
        grad_loss_h = grad_loss_hrelu.copy()
        grad_loss_h[h < 0] = 0
        grad_h_w1 = x
        grad_loss_w1 = grad_h_w1.T.dot(grad_loss_h)
        w1 -= learning_rate * grad_loss_w1
        w2 -= learning_rate * grad_loss_w2
    return losses


def main():
    args = parse_args(__doc__.splitlines()[0], epochs=500, seed=3)

    # N is batch size; D_in is input dimension; H is hidden dimension; D_out is output dimension.
    N, D_in, H, D_out = 64, 1000, 100, 10
    # The notebook draws with np.random.randn; a seeded generator makes runs reproducible.
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((N, D_in))
    y = rng.standard_normal((N, D_out))
    w1 = rng.standard_normal((D_in, H))   # input -> hidden weights
    w2 = rng.standard_normal((H, D_out))  # hidden -> output weights
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
