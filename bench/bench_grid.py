"""The benchmark grid under pytest-benchmark: one group per point, one row per implementation.

Run from the repository root (a plain ``pytest`` skips the benchmarks and runs
only ``test_grid_covers_the_issue``, a check of the table itself)::

    pytest bench/bench_grid.py --benchmark-only                # ~4 minutes here
    pytest bench/bench_grid.py --benchmark-only -k "tanh and not torch"

Points: ``_groups.GRID`` (rows fastnn, numpy, gemm-floor, torch; each verified
against fastnn.reference before timing). Groups ``act:<family>`` time fastnn on
the same network with relu, sigmoid and tanh. pytest-benchmark times a group's
rows one after another; the report's ratios come from ``python bench/grid.py``,
which times them alternately (see its docstring). Both share the rows.
"""

import pytest

import _groups as G

CASES = G.grid_cases() + G.act_cases()
ROWS = [(case, label) for case in CASES for label, _, _ in case.rows]


@pytest.mark.parametrize("case,row", ROWS, ids=[f"{c.name}-{r}" for c, r in ROWS])
def test_grid(benchmark, bench_row, case, row):
    bench_row(benchmark, case, row)


def test_grid_covers_the_issue():
    """Issue 16's requirements on the grid, checked on the table (no training)."""
    grid = G.GRID
    assert len(grid) >= 24 and len({p.name for p in grid}) == len(grid)
    axes = {
        "hidden layers": ([1, 2, 3], lambda p: len(p.widths) - 2),
        "hidden width": ([4, 16, 64, 256], lambda p: set(p.widths[1:-1])),
        "batch": ([1, 32, 256, None], lambda p: p.batch),
        "activation": (["relu", "sigmoid", "tanh"], lambda p: p.activation),
        "rows": ([256, 4096, 65536], lambda p: p.rows),
        "shuffle": ([True, False], lambda p: p.shuffle),
        "dtype": (["float64", "float32"], lambda p: p.dtype),
    }
    for axis, (values, get) in axes.items():
        for v in values:
            uses = sum(v in get(p) if isinstance(get(p), set) else get(p) == v for p in grid)
            assert uses >= 2, f"{axis} = {v} is used {uses} time(s)"
    families = {}
    for p in grid:
        if p.family:
            families.setdefault((p.family, p.widths, p.batch, p.rows), set()).add(p.activation)
    assert sum(acts == {"relu", "sigmoid", "tanh"} for acts in families.values()) >= 3
    assert sum(p.size_class == "blas" for p in grid) >= 3
    assert sum(p.size_class == "tiny" for p in grid) >= 3
    wide = [p for p in grid if p.note == "wide"]
    assert len(wide) >= 2 and all(p.batch is None and not p.shuffle and 2 * p.rows <= p.widths[0]
                                  for p in wide)
