"""The ``classify`` group (issue 17): digits-sized softmax classification with Adam.

1797x64 -> 64 -> 10 (scikit-learn's digits scaled to [0, 1], or random data of
that shape without scikit-learn), relu, loss="softmax_ce" on integer labels,
``fastnn.Adam(lr=1e-3)``, batch_size=32, shuffle=True, seed=0, 30 epochs.

Rows: ``fastnn``; ``numpy`` (fastnn.reference.train, same arguments);
``torch`` (autograd + ``torch.optim.Adam`` + ``F.cross_entropy``, the same
shuffled orders, so it is verified against the reference too); ``sklearn``
(``MLPClassifier(hidden_layer_sizes=(64,), solver="adam", batch_size=32,
max_iter=30, tol=0, n_iter_no_change=10**9, alpha=0, random_state=0,
shuffle=True).fit``, only the fit timed; its own initialisation, so it is only
checked to run 30 epochs with a falling loss). Goals: fastnn >= 5x sklearn and
>= 3x torch.

Run: ``pytest bench/bench_classify.py --benchmark-only`` (~30 s here).
"""

import pytest

import _groups as G

CASES = G.classify_cases()
ROWS = [(case, label) for case in CASES for label, _, _ in case.rows]


@pytest.mark.parametrize("case,row", ROWS, ids=[f"{c.name}-{r}" for c, r in ROWS])
def test_classify(benchmark, bench_row, case, row):
    bench_row(benchmark, case, row)
