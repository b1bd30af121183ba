"""Write docs/performance.md, docs/performance.png and the README's summary table from
benchmark results.

Usage, from the repository root::

    python bench/report.py --run                 # measure everything (~17 min here), then write
    python bench/report.py --run --only grid     # re-measure a part, reuse the other results
    python bench/report.py                       # write from bench/results/*.json
    python bench/report.py a.json b.json         # write from these files (pytest-benchmark
                                                 # JSON, grid.py JSON, busy.py JSON)

``--run`` runs, each writing its JSON into bench/results/:

* ``grid``: ``python bench/grid.py --groups seeds,check,classify,many,grid,act``
  (interleaved.json):
  every row of a group timed alternately, so ratios compare like with like;
* ``startup``: ``pytest bench/bench_startup.py --benchmark-only`` (startup.json);
* ``busy``: ``python bench/busy.py`` (busy.json);
* ``hooks``: ``python bench/grid.py --groups hooks`` (hooks.json).

A group found in several files is taken whole from one of them: an interleaved
(grid.py) run before a pytest-benchmark one, a later file before an earlier one
of the same kind. Each section names the run it comes from. Every number in
the output comes from those files; a target that is missed shows as **no**, one
without a measurement as "not measured". Rows whose interquartile range
exceeds 10% of their median are marked ``~``.
"""

import argparse
import glob
import json
import math
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
DOC = os.path.join(ROOT, "docs", "performance.md")
PNG = os.path.join(ROOT, "docs", "performance.png")
README = os.path.join(ROOT, "README.md")
RUNS = {  # --run pieces: command, JSON written
    "grid": ([sys.executable, "bench/grid.py", "--groups", "seeds,check,classify,many,grid,act",
              "--out", "bench/results/interleaved.json"], "interleaved.json"),
    "startup": ([sys.executable, "-m", "pytest", "bench/bench_startup.py", "--benchmark-only",
                 "-q", "-p", "no:cacheprovider", "--benchmark-json=bench/results/startup.json"],
                "startup.json"),
    "busy": ([sys.executable, "bench/busy.py", "--out", "bench/results/busy.json"], "busy.json"),
    "hooks": ([sys.executable, "bench/grid.py", "--groups", "hooks", "--out",
               "bench/results/hooks.json"], "hooks.json"),
}
SEED_IMPLS = ["fastnn", "fastnn-nocheck", "numpy", "gemm-floor", "torch", "jax"]
GRID_IMPLS = ["fastnn", "numpy", "gemm-floor", "torch"]
NUMPY_RANGE = (0.02, 0.5)  # the grid's epochs are sized for a numpy row in this range
MLP3_GD_GOAL = 25  # numpy / fastnn on mlp3_gd, at least
VMAP_GOAL = 8  # jax or torch vmap / train_many, at least


# ------------------------------------------------------------------- loading
class Results:
    """Every measured group, by name: {"source": ..., "rows": {label: row}}; busy; machine."""

    def __init__(self):
        self.groups, self.busy, self.machine, self.sources = {}, None, {}, []

    def add(self, path):
        with open(path) as f:
            data = json.load(f)
        kind = data.get("kind") or ("pytest-benchmark" if "benchmarks" in data else None)
        source = {"file": os.path.relpath(path, ROOT), "kind": kind,
                  "datetime": str(data.get("datetime", ""))[:19].replace("T", " "),
                  "command": data.get("command", "pytest --benchmark-only")}
        if kind == "fastnn-busy":
            self.busy = dict(data, source=source)
        elif kind == "fastnn-interleaved":
            for name, case in data["cases"].items():
                self._put(name, source, case["rows"], case.get("group"), interleaved=True)
        elif kind == "pytest-benchmark":
            self._add_pytest(data, source)
        else:
            raise SystemExit(f"{path}: not a result file this report knows")
        machine = data.get("machine") or data.get("machine_info", {}).get("fastnn")
        if machine and (not self.machine or kind == "fastnn-interleaved"):
            self.machine = machine
        self.sources.append(source)

    def _add_pytest(self, data, source):
        groups = {}
        for b in data["benchmarks"]:
            extra = b.get("extra_info", {})
            label = extra.get("impl") or b["name"]
            s = b["stats"]
            groups.setdefault(b.get("group") or b["name"], {})[label] = {
                "median": s["median"], "iqr": s.get("iqr", 0.0), "rounds": s.get("rounds"),
                "info": extra, "verified": extra.get("verified"),
                "impl": extra.get("implementation")}
        for name, rows in groups.items():
            self._put(name, source, rows, name.split(":")[0], interleaved=False)

    def _put(self, name, source, rows, group, interleaved):
        old = self.groups.get(name)
        if old is not None and old["interleaved"] and not interleaved:
            return  # an interleaved measurement wins over a sequential one
        self.groups[name] = {"source": source, "rows": rows, "group": group,
                             "interleaved": interleaved}

    def named(self, prefix):
        return {n: g for n, g in self.groups.items() if n.startswith(prefix)}

    def median(self, group, row):
        r = self.groups.get(group, {}).get("rows", {}).get(row)
        return None if r is None else r.get("median")


def load(paths):
    results = Results()
    for p in paths:
        results.add(p)
    return results


# ---------------------------------------------------------------- formatting
def fmt_time(seconds, row=None):
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "—"
    if seconds >= 10:
        text = f"{seconds:.1f} s"
    elif seconds >= 1:
        text = f"{seconds:.2f} s"
    elif seconds >= 1e-3:
        text = f"{seconds * 1e3:.3g} ms"
    else:
        text = f"{seconds * 1e6:.3g} µs"
    return ("~" + text) if row and noisy(row) else text


def noisy(row):
    return (row.get("rounds") or 0) >= 3 and row.get("iqr", 0.0) > 0.10 * row["median"]


def ratio(num, den):
    return None if num is None or den is None or den <= 0 else num / den


def fmt_ratio(r):
    if r is None:
        return "—"
    return f"{r:.0f}×" if r >= 100 else f"{r:.3g}×"


def fmt_vs(r, limit):
    """fmt_ratio, with a fourth digit where three would print the limit itself."""
    shown = fmt_ratio(r)
    return f"{r:.4g}×" if r is not None and r != limit and shown == fmt_ratio(limit) else shown


def named_vs(limit):
    """How a count_target over (name, ratio) items shows its worst one: fmt_vs (name)."""
    return lambda p: f"{fmt_vs(p[1], limit)} ({p[0]})"


def table(header, rows, align=None):
    align = align or ["l"] + ["r"] * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def row_cell(group, label):
    """A row's median for a table: its time, or why there is none."""
    r = group["rows"].get(label)
    if r is None:
        return "—"
    if "error" in r:
        return "**failed verification**"
    if "missing" in r:
        return r["missing"]
    return fmt_time(r["median"], r)


def source_line(groups):
    """Which run(s) a section's numbers come from."""
    seen = []
    for g in groups:
        s = g["source"]
        text = f"`{s['file']}` ({'interleaved' if g['interleaved'] else 'pytest-benchmark'}, " \
               f"{s['datetime']} UTC)"
        if text not in seen:
            seen.append(text)
    return "Source: " + "; ".join(seen) + "." if seen else ""


# ------------------------------------------------------------------- targets
@dataclass
class Target:
    section: str
    label: str
    goal: str
    value: str
    met: object  # True, False, or None (not measured)

    def cells(self):
        met = "not measured" if self.met is None else "yes" if self.met else "**no**"
        return [self.section, self.label, self.goal, self.value, met]


def bound(label, section, value, goal, at_least, limit, shown=None):
    """A target comparing one measured value with a limit."""
    if value is None:
        return Target(section, label, goal, "—", None)
    met = value >= limit if at_least else value <= limit
    return Target(section, label, goal, shown or fmt_vs(value, limit), met)


def count_target(section, label, goal, items, ok, worst_key, shown):
    """A target over several items: 'k of n', and the worst one."""
    if not items:
        return Target(section, label, goal, "—", None)
    good = [i for i in items if ok(i)]
    worst = worst_key(items)
    return Target(section, label, goal, f"{len(good)} of {len(items)}; worst {shown(worst)}",
                  len(good) == len(items))


# -------------------------------------------------------------------- machine
def machine_section(results):
    m = results.machine
    if not m:
        return "Machine: not recorded."
    v = m.get("versions", {})
    names = [k for k in ("python", "numpy", "numba", "llvmlite", "scipy", "threadpoolctl",
                         "torch", "jax", "jaxlib", "scikit-learn") if k in v]
    blas = "; ".join(f"{b.get('library')} ({b.get('api')} {b.get('version')}, "
                     f"{b.get('arch')}, {b.get('threads')} threads)" for b in m.get("blas", []))
    lines = [f"- Machine: {m.get('cpu_model')}, {m.get('cores')} cores, {m.get('system', '')}; "
             f"load average at the start {_load(m)}.",
             "- Versions: " + ", ".join(f"{k} {v[k]}" for k in names) + ".",
             f"- BLAS loaded: {blas or 'not recorded'}. fastnn's kernels call "
             f"{m.get('fastnn_blas', 'a BLAS not recorded in this file')}; the NumPy loop and "
             "the gemm-floor use NumPy's.",
             "- Thread settings: " + (", ".join(f"{k}={val}" for k, val in
                                               m.get("threads_env", {}).items()) or "none") + "."]
    lines.append("- Result files: " + "; ".join(
        f"`{s['file']}` ({s['kind']}, {s['datetime']} UTC, `{s['command']}`)"
        for s in results.sources) + ".")
    return "\n".join(lines)


def _load(m):
    la = m.get("load_average")
    return "—" if not la else " / ".join(f"{x:.2f}" for x in la)


# ---------------------------------------------------------------------- seeds
SEED_RATIOS = [("numpy", "fastnn", "numpy / fastnn"),
               ("fastnn", "gemm-floor", "fastnn / gemm-floor"),
               ("jax", "fastnn", "jax / fastnn"), ("torch", "fastnn", "torch / fastnn")]
SEED_TARGETS = [  # (label, group a, row a, group b, row b, at least, limit)
    ("relu2: numpy / fastnn", "relu2-float64", "numpy", "relu2-float64", "fastnn", True, 1.3),
    ("relu2: fastnn / gemm-floor", "relu2-float64", "fastnn", "relu2-float64", "gemm-floor",
     False, 1.10),
    ("sigmoid2: numpy / fastnn", "sigmoid2-float64", "numpy", "sigmoid2-float64", "fastnn",
     True, 1.8),
    ("sigmoid2: fastnn / gemm-floor", "sigmoid2-float64", "fastnn", "sigmoid2-float64",
     "gemm-floor", False, 1.10),
    ("mlp3_gd: numpy / fastnn", "mlp3_gd-float64", "numpy", "mlp3_gd-float64", "fastnn", True,
     MLP3_GD_GOAL),
    ("mlp3_gd: jax / fastnn", "mlp3_gd-float64", "jax", "mlp3_gd-float64", "fastnn", True, 4),
    ("mlp3_sgd: numpy / fastnn", "mlp3_sgd-float64", "numpy", "mlp3_sgd-float64", "fastnn",
     True, 500),
    ("mlp3_sgd: jax / fastnn", "mlp3_sgd-float64", "jax", "mlp3_sgd-float64", "fastnn", True, 8),
    ("relu2: numpy float64 / fastnn float32", "relu2-float64", "numpy", "relu2-float32", "fastnn",
     True, 2.5),
]
CHECK_LIMIT = 1.02  # fastnn / fastnn-nocheck, at most: check_finite's cost


def seed_targets(results):
    out = []
    for label, ga, ra, gb, rb, at_least, limit in SEED_TARGETS:
        value = ratio(results.median("seed:" + ga, ra), results.median("seed:" + gb, rb))
        out.append(bound(label, "seeds", value, f"{'≥' if at_least else '≤'} {limit:g}×",
                         at_least, limit))
    for w in ("relu2", "sigmoid2", "mlp3_gd", "mlp3_sgd"):
        value = ratio(results.median(f"check:{w}", "fastnn"),
                      results.median(f"check:{w}", "fastnn-nocheck"))
        out.append(bound(f"{w}: check_finite cost, fastnn / fastnn-nocheck (group check)",
                         "seeds", value, f"≤ {CHECK_LIMIT:g}×", False, CHECK_LIMIT))
    return out


def seeds_section(results):
    groups = results.named("seed:")
    if not groups:
        return ""
    impls = [i for i in SEED_IMPLS if any(i in g["rows"] for g in groups.values())]
    cols = [c for c in SEED_RATIOS if c[0] in impls and c[1] in impls]
    rows, notes = [], []
    for name, g in groups.items():
        workload, dtype = name[len("seed:"):].rsplit("-", 1)
        med = {i: results.median(name, i) for i in impls}
        rows.append([workload, dtype] + [row_cell(g, i) for i in impls]
                    + [fmt_ratio(ratio(med[a], med[b])) for a, b, _ in cols])
        desc = next((r["info"].get("description") for r in g["rows"].values()
                     if r.get("info", {}).get("description")), None)
        if desc and f"- `{workload}`: {desc}" not in notes:
            notes.append(f"- `{workload}`: {desc}")
    text = [table(["workload", "dtype"] + impls + [c[2] for c in cols], rows,
                  ["l", "l"] + ["r"] * (len(impls) + len(cols))), "", source_line(groups.values()),
            "", "Median wall time of one whole training run (fresh copies of the initial "
            "parameters each run). `fastnn / gemm-floor` below 1× on relu2 and sigmoid2 is "
            "the Gram path, which does fewer products; on mlp3's 4-unit layers the gemm-floor "
            "is mostly NumPy's per-call overhead.", ""] + notes
    rate, dgemm = flop_rate(results, "mlp3_gd"), results.machine.get("dgemm_flops")
    numpy = results.median("seed:mlp3_gd-float64", "numpy")
    if rate and dgemm and numpy:
        need = rate * results.median("seed:mlp3_gd-float64", "fastnn") * MLP3_GD_GOAL / numpy
        text += ["", f"mlp3_gd's arithmetic: the fastnn row does the NumPy loop's (2 flops per "
                 f"multiply-add of the forward pass, the weight gradients and the hidden "
                 f"layers' gradients) at {rate / 1e9:.1f} GFlop/s, {rate / dgemm:.0%} of one "
                 f"core's dgemm rate ({dgemm / 1e9:.0f} GFlop/s: {DGEMM_RATE}); "
                 f"{MLP3_GD_GOAL}× the NumPy loop would take {need / 1e9:.0f} GFlop/s."]
        rate32 = flop_rate(results, "mlp3_gd", "float32")
        if rate32:
            text[-1] += (f" The float32 row, with twice the values per vector instruction, runs "
                         f"at {rate32 / 1e9:.1f} GFlop/s: the loops of its 4-unit layers are "
                         "bound by vector arithmetic (what bounds them, and 512-bit vectors "
                         "tried: docs/design.md, BLAS or loops per layer).")
    return "\n".join(text + check_table(results))


def check_table(results):
    """check_finite's cost, from the check group: the seeds' fastnn rows timed alone."""
    groups = results.named("check:")
    if not groups:
        return []
    rows = [[name[len("check:"):], row_cell(g, "fastnn"), row_cell(g, "fastnn-nocheck"),
             fmt_ratio(ratio(results.median(name, "fastnn"),
                             results.median(name, "fastnn-nocheck"))),
             g["rows"].get("fastnn", {}).get("rounds", "—")] for name, g in groups.items()]
    return ["", "check_finite's cost (float64): the two fastnn rows above timed alternately "
            "without the other rows, over more runs than the NumPy rows leave the seeds group.",
            "", table(["workload", "fastnn", "fastnn-nocheck", "fastnn / fastnn-nocheck",
                       "timed runs of fastnn"],
                  rows, ["l", "r", "r", "r", "r"]), "", source_line(groups.values())]


DGEMM_RATE = ("NumPy's BLAS multiplying two 512 × 512 float64 matrices on one core of this "
              "machine, the fastest of 20, measured with these results")


def train_flops(widths, rows, epochs):
    """The NumPy loop's arithmetic: 2 flops per multiply-add of the forward pass, the
    weight gradients and the hidden layers' gradients, over every row and epoch."""
    pairs = list(zip(widths, widths[1:]))
    macs = 2 * sum(a * b for a, b in pairs) + sum(a * b for a, b in pairs[1:])
    return 2 * macs * rows * epochs


def flop_rate(results, workload, dtype="float64"):
    """flop/s of the fastnn row on a full-batch seed workload (None if not measured)."""
    from fastnn import _workloads
    w = _workloads.WORKLOADS[workload]
    seconds = results.median(f"seed:{workload}-{dtype}", "fastnn")
    if not seconds or w.batch_size is not None:
        return None
    return train_flops(w.widths, w.rows, w.epochs) / seconds


# ---------------------------------------------------------------------- hooks
HOOKS_IMPLS = ["fastnn", "fastnn-callback", "fastnn-print"]
HOOKS_GOALS = {"relu2": 1.3, "mlp3_gd": 2.5}  # hook / no hook, at most


def hooks_section(results):
    groups = results.named("hooks:")
    if not groups:
        return ""
    rows = []
    for name, g in groups.items():
        base = results.median(name, "fastnn")
        rows.append([name[len("hooks:"):]] + [row_cell(g, i) for i in HOOKS_IMPLS]
                    + [fmt_ratio(ratio(results.median(name, i), base)) for i in HOOKS_IMPLS[1:]])
    return "\n".join([
        table(["workload"] + HOOKS_IMPLS + ["callback / none", "print / none"], rows,
              ["l"] + ["r"] * (len(HOOKS_IMPLS) + 2)), "", source_line(groups.values()), "",
        "The seed workloads in float64. `fastnn-callback`: a callback that does nothing, after "
        "every epoch; `fastnn-print`: `print_every=1`, printed into a sink (fastnn's cost, not "
        "a terminal's). Losses are printed from each chunk's history, so printing needs no "
        "extra compiled calls; a callback sees the weights of its epoch, so every epoch is a "
        "compiled call of its own, followed by the write-back into the user's arrays and, "
        "after the callback, the read-back of whatever it changed there (on the Gram path, a "
        "comparison of the first layer first). What "
        "limits the callback rows: on relu2 and sigmoid2 (the Gram path) each call must form "
        "the first layer's weights, one 64×1000×n1 product that the path otherwise does once "
        "per call, against an epoch that costs about a 64×64×n1 product (the generic path "
        "would do two 64×1000×n1 products per epoch: slower still); on mlp3_gd "
        f"{_per_epoch_us(results, 'fastnn-callback', 'fastnn')} per call besides the epoch (the "
        f"compiled call's {_call_arguments()} arguments, the write-back and read-back of six "
        "arrays, the checkpoint an interrupt restores) against an epoch of "
        f"{_per_epoch_us(results, 'fastnn')}."])


def _call_arguments():
    """How many arguments the compiled training call takes."""
    from fastnn.kernels import loop
    return loop.run_epochs.py_func.__code__.co_argcount


def _per_epoch_us(results, row, minus=None):
    """mlp3_gd's hooks row time per epoch (less another row's), as text."""
    from fastnn import _workloads
    name = "hooks:mlp3_gd"
    t, base = results.median(name, row), results.median(name, minus) if minus else 0.0
    if t is None or base is None:
        return "—"
    return f"{(t - base) / _workloads.WORKLOADS['mlp3_gd'].epochs * 1e6:.1f} µs"


def hooks_targets(results):
    out = []
    for workload, limit in HOOKS_GOALS.items():
        name = f"hooks:{workload}"
        for row, what in (("fastnn-callback", "a callback after every epoch"),
                          ("fastnn-print", "print_every=1")):
            value = ratio(results.median(name, row), results.median(name, "fastnn"))
            out.append(bound(f"{workload}: {what} / no hook", "hooks", value,
                             f"≤ {limit:g}×", False, limit))
    return out


# ----------------------------------------------------------------------- grid
def grid_points(results):
    """[(name, info, {label: median}, group)] of the grid, in the order measured."""
    out = []
    for name, g in results.named("grid:").items():
        info = next((r["info"] for r in g["rows"].values() if r.get("info")), {})
        med = {label: r.get("median") for label, r in g["rows"].items()}
        out.append((name[len("grid:"):], info, med, g))
    return out


def macs_step(info):
    """Forward multiply-adds of one step, all layers."""
    return sum(info.get("macs_per_layer", [])) or None


def fmt_count(n):
    if n is None:
        return "—"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.0f}"


def describe_net(info):
    net = "→".join(str(w) for w in info.get("widths", []))
    batch = "full" if info.get("batch") == info.get("rows") else info.get("batch")
    return f"{net}, batch {batch}, {info.get('rows')} rows"


def describe_point(info):
    return (f"{describe_net(info)}, {info.get('activation')}"
            f"{', shuffled' if info.get('shuffle') else ''}, {info.get('dtype')}"
            f"{', wide data' if info.get('note') == 'wide' else ''}")


def grid_section(results, png_name):
    points = grid_points(results)
    if not points:
        return ""
    rows = []
    for name, info, med, g in points:
        macs = info.get("macs_per_layer", [])
        numpy_s = med.get("numpy")
        sized = numpy_s is None or NUMPY_RANGE[0] <= numpy_s <= NUMPY_RANGE[1]
        flag = "" if sized else " †"
        rows.append([describe_point(info), info.get("epochs", "—"), fmt_count(macs_step(info)),
                     " / ".join(fmt_count(m) for m in macs), info.get("size_class") or "",
                     *[row_cell(g, i) + (flag if i == "numpy" else "") for i in GRID_IMPLS],
                     fmt_ratio(ratio(med.get("numpy"), med.get("fastnn"))),
                     fmt_ratio(ratio(med.get("fastnn"), med.get("gemm-floor"))),
                     fmt_ratio(ratio(med.get("torch"), med.get("fastnn")))])
    header = ["point", "epochs", "MACs / step", "per layer", "class"] + GRID_IMPLS + [
        "numpy / fastnn", "fastnn / gemm-floor", "torch / fastnn"]
    text = [table(header, rows, ["l", "r", "r", "r", "l"] + ["r"] * 7), "",
            source_line(g for *_, g in points), "",
            "MACs / step: forward multiply-adds of one full batch (n_in · n_out · batch rows, "
            "summed over layers; per layer after it). class: `blas` when every layer has "
            "≥ 32k per step, `tiny` when every layer has < 4k. † marks a numpy row outside "
            "the 20–500 ms the epochs were sized for. Every row was checked against "
            "`fastnn.reference` before it was timed (rtol 1e-9 float64, 1e-4 float32).", "",
            "Rows: `fastnn` = `fastnn.train`; `numpy` = `fastnn.reference.train`, the plain "
            "per-batch loop (fancy-indexed batch, forward, backward, update); `gemm-floor` = "
            "only that loop's products (a @ w, a.T @ d, and d @ w.T below the first layer) "
            "at the same batch sizes on NumPy's BLAS; `torch` = the same loop in PyTorch eager "
            "without autograd, on the same row orders. Data (bench/_groups.py): x standard "
            "normal, y from a random tanh teacher network scaled to unit variance, weights "
            "N(0, 1/fan_in), zero biases, MSE; lr the largest of 0.1/0.05/0.02/0.01 whose loss "
            "falls steadily; epochs fixed in the table after `python bench/grid.py "
            "--calibrate`, which aims the numpy row at 100 ms.", ""]
    for limit in (median_limit(points), blas_limit(points)):
        if limit:
            text += [limit, ""]
    if png_name:
        text += [f"![numpy / fastnn and fastnn / gemm-floor against multiply-adds per step]"
                 f"({png_name})", ""]
    failed = [f"{name} {label}: {r['error']}" for name, _, _, g in points
              for label, r in g["rows"].items() if "error" in r]
    if failed:
        text += ["Rows that failed verification (not timed):", ""] + [f"- {f}" for f in failed]
    return "\n".join(text)


def blas_limit(points):
    """What limits fastnn / gemm-floor on the BLAS-sized points: the work besides the products,
    per step and per unit-row, against the products per unit-row (a table)."""
    rows = []
    for name, info, m, _ in points:
        if info.get("size_class") != "blas" or not (m.get("fastnn") and m.get("gemm-floor")):
            continue
        steps = info["epochs"] * info["steps_per_epoch"]
        unit_rows = min(info["batch"], info["rows"]) * sum(info["widths"])
        extra = (m["fastnn"] - m["gemm-floor"]) / steps
        rows.append((macs_step(info) / unit_rows, name, m["fastnn"] / m["gemm-floor"], extra,
                     extra / unit_rows))
    if not rows:
        return None
    cells = [[name, fmt_ratio(r), f"{per:.0f}", fmt_time(extra) if extra > 0 else "—",
              f"{ns * 1e9:.2f} ns" if extra > 0 else "—"]
             for per, name, r, extra, ns in sorted(rows)]
    header = ["BLAS-sized point", "fastnn / gemm-floor", "multiply-adds per unit-row",
              "beyond the products, per step", "per unit-row"]
    return "\n".join([
        "What limits fastnn / gemm-floor on the BLAS-sized points: the gemm-floor row is the "
        "products alone, while fastnn also loads each batch (the rows transposed into "
        "feature-major order, 0.3–0.9 ns per element from the cache, up to about 1.1 when "
        "shuffled rows come from beyond it), applies each activation and its slope (tanh and "
        "sigmoid about 1 ns per element, relu 0.25), sums the bias gradients and forms the "
        "loss: passes over every unit of every row of the batch. A unit-row is one unit "
        "(input, hidden or output) of one row of a batch; the fewer multiply-adds per "
        "unit-row, the more those passes weigh. Measured parts: docs/design.md (batch "
        "transpose, activations, batches in chunks, prefetching tried); — where fastnn took "
        "less time than the products: the Gram path does fewer, a batch run in chunks keeps "
        "its products in the cache, where the gemm-floor's products of a whole large batch go "
        "to memory, and on OpenBLAS's SkylakeX core chunks fit its small-matrix kernels.", "",
        table(header, cells, ["l", "r", "r", "r", "r"])])


def median_limit(points):
    """What limits the grid's median numpy / fastnn, from the gemm-floor rows."""
    meds = [m for _, _, m, _ in points
            if m.get("numpy") and m.get("fastnn") and m.get("gemm-floor")]
    if not meds:
        return ""
    low = [m["numpy"] / m["gemm-floor"] for m in meds if m["numpy"] / m["gemm-floor"] < 3.0]
    ceiling = statistics.median(m["numpy"] / min(m["fastnn"], m["gemm-floor"]) for m in meds)
    return (f"What limits the median numpy / fastnn: on {len(low)} of {len(meds)} points the "
            "NumPy loop's products alone (the gemm-floor row) take more than a third of its "
            f"time (numpy / gemm-floor {fmt_ratio(min(low))}–{fmt_ratio(max(low))}), so no loop "
            "that does those products on NumPy's BLAS can run them 3× faster. If fastnn ran at "
            "the gemm-floor wherever it is now slower, the median would be "
            f"{fmt_ratio(ceiling)}." if low else "")


def act_families(results):
    """[(family, {activation: median}, group)]: interleaved act groups, else the grid's rows."""
    out = []
    for name, g in results.named("act:").items():
        out.append((name[len("act:"):], {a: r.get("median") for a, r in g["rows"].items()}, g))
    if out:
        return out
    fams = {}
    for _, info, med, g in grid_points(results):
        if info.get("family"):
            fams.setdefault(info["family"], ({}, g))[0][info["activation"]] = med.get("fastnn")
    return [(f, acts, g) for f, (acts, g) in fams.items()]


def act_section(results):
    fams = act_families(results)
    if not fams:
        return ""
    rows = []
    for fam, acts, g in fams:
        rows.append([fam] + [fmt_time(acts.get(a)) for a in ("relu", "sigmoid", "tanh")]
                    + [fmt_ratio(ratio(acts.get(a), acts.get("relu")))
                       for a in ("sigmoid", "tanh")])
    nets = {info.get("family"): describe_net(info) + (", shuffled" if info.get("shuffle") else "")
            for _, info, _, _ in grid_points(results) if info.get("family")}
    notes = [f"- `{f}`: {nets[f]}" for f, _, _ in fams if f in nets]
    return "\n".join([table(["network", "relu", "sigmoid", "tanh", "sigmoid / relu",
                             "tanh / relu"], rows), "", source_line(g for *_, g in fams),
                      "", "fastnn alone, the three activations of one network timed alternately "
                      "(groups `act:*`). What sets sigmoid and tanh apart from relu: each costs "
                      "a polynomial (exp's) and one division per value, where relu is one "
                      "comparison; they weigh most where a value carries few multiply-adds "
                      "(docs/design.md, vectorizable exp and tanh)."] + [""] + notes)


def grid_targets(results):
    pts = [(n, i, m) for n, i, m, _ in grid_points(results)
           if m.get("fastnn") and m.get("numpy")]
    speed = [(n, m["numpy"] / m["fastnn"]) for n, i, m in pts]
    s = "grid"
    out = [count_target(s, "no point below 1.0× numpy", "numpy / fastnn ≥ 1 everywhere", speed,
                        lambda p: p[1] >= 1.0, lambda ps: min(ps, key=lambda p: p[1]),
                        named_vs(1.0))]
    med = statistics.median([r for _, r in speed]) if speed else None
    out.append(bound("median numpy / fastnn", s, med, "≥ 3×", True, 3.0))
    blas = [(n, m["fastnn"] / m["gemm-floor"]) for n, i, m in pts
            if i.get("size_class") == "blas" and m.get("gemm-floor")]
    out.append(count_target(s, "every layer ≥ 32k MACs per step: fastnn / gemm-floor",
                            "≤ 1.15×", blas, lambda p: p[1] <= 1.15,
                            lambda ps: max(ps, key=lambda p: p[1]),
                            named_vs(1.15)))
    tiny = [(n, r) for (n, r), (_, i, _) in zip(speed, pts) if i.get("size_class") == "tiny"]
    out.append(count_target(s, "every layer < 4k MACs per step: numpy / fastnn", "≥ 5×", tiny,
                            lambda p: p[1] >= 5.0, lambda ps: min(ps, key=lambda p: p[1]),
                            named_vs(5.0)))
    acts = [(f"{fam} {a}", ratio(t.get(a), t.get("relu"))) for fam, t, _ in act_families(results)
            for a in ("sigmoid", "tanh") if ratio(t.get(a), t.get("relu")) is not None]
    out.append(count_target(s, "tanh and sigmoid time / relu time, same network", "≤ 1.3×", acts,
                            lambda p: p[1] <= 1.3, lambda ps: max(ps, key=lambda p: p[1]),
                            named_vs(1.3)))
    sized = [(n, m["numpy"]) for n, i, m in pts]
    out.append(count_target(s, "numpy row within 20–500 ms (epochs sizing)", "all points", sized,
                            lambda p: NUMPY_RANGE[0] <= p[1] <= NUMPY_RANGE[1],
                            lambda ps: max(ps, key=lambda p: abs(math.log(p[1] / 0.1))),
                            lambda p: f"{fmt_time(p[1])} ({p[0]})"))
    return out


def verification_target(results):
    """Every timed row was checked against the reference first; a failure is shown here."""
    rows = [(f"{name} {label}", r) for name, g in results.groups.items()
            if not name.startswith("startup") for label, r in g["rows"].items()
            if "missing" not in r]
    return [count_target("all", "rows verified against fastnn.reference before timing", "all",
                         rows, lambda p: "error" not in p[1],
                         lambda ps: next((p for p in ps if "error" in p[1]), None),
                         lambda p: "none failed" if p is None else f"failed: {p[0]}")]


# ------------------------------------------------------------------- classify
CLASSIFY_IMPLS = ["fastnn", "numpy", "torch", "sklearn"]


def classify_section(results):
    groups = results.named("classify:")
    if not groups:
        return ""
    rows = []
    for name, g in groups.items():
        f = results.median(name, "fastnn")
        for label in CLASSIFY_IMPLS:
            r = g["rows"].get(label, {})
            rows.append([label, row_cell(g, label),
                         fmt_ratio(ratio(results.median(name, label), f)),
                         r.get("verified") or r.get("error") or r.get("missing") or "—"])
    info = next((r["info"] for g in groups.values() for r in g["rows"].values() if r.get("info")),
                {})
    return "\n".join([
        f"Data: {info.get('data', '?')}; network "
        f"{'→'.join(map(str, info.get('widths', [])))}, relu, softmax_ce on integer labels, "
        f"{info.get('optimizer', 'Adam')}, batch_size {info.get('batch')}, shuffled (seed 0), "
        f"{info.get('epochs')} epochs. torch: autograd, `torch.optim.Adam`, "
        "`F.cross_entropy`, the same row orders; sklearn: `MLPClassifier(hidden_layer_sizes=(64,), "
        "solver=\"adam\", batch_size=32, max_iter=30, tol=0, n_iter_no_change=10**9, alpha=0, "
        "random_state=0, shuffle=True).fit` (only the fit timed).", "",
        table(["row", "median", "time / fastnn", "checked"], rows, ["l", "r", "r", "l"]), "",
        source_line(groups.values())])


def classify_targets(results):
    name = next(iter(results.named("classify:")), None)
    f = results.median(name, "fastnn") if name else None
    return [bound("sklearn fit / fastnn", "classify", ratio(results.median(name, "sklearn"), f)
                  if name else None, "≥ 5×", True, 5.0),
            bound("torch eager / fastnn", "classify", ratio(results.median(name, "torch"), f)
                  if name else None, "≥ 3×", True, 3.0)]


# ----------------------------------------------------------------------- many
MANY_IMPLS = ["fastnn-many", "fastnn-many-1thread", "fastnn-sequential", "jax-vmap", "torch-vmap"]
MANY_BASE = "fastnn-many"  # every ratio's denominator
MANY_RATIOS = ["fastnn-sequential", "fastnn-many-1thread", "jax-vmap", "torch-vmap"]
MANY_CASES = ["many:mlp3_gd-64", "many:digits-64"]  # the targets' cases


def many_section(results):
    groups = results.named("many:")
    if not groups:
        return ""
    rows, notes, failed = [], [], []
    for name, g in groups.items():
        case = name[len("many:"):]
        rows.append([case] + [row_cell(g, i) for i in MANY_IMPLS]
                    + [fmt_ratio(ratio(results.median(name, i), results.median(name, MANY_BASE)))
                       for i in MANY_RATIOS])
        info = next((r["info"] for r in g["rows"].values() if r.get("info")), {})
        if info.get("description"):
            notes.append(f"- `{case}`: {info['description']}.")
        failed += [f"- {name} {label}: {r['error']}" for label, r in g["rows"].items()
                   if "error" in r]
    text = [table(["case"] + MANY_IMPLS + [f"{i} / {MANY_BASE}" for i in MANY_RATIOS], rows), "",
            source_line(groups.values()), "",
            "Median wall time of one run training every network (fresh copies of the initial "
            "parameters each run). `fastnn-many`: one `fastnn.train_many` call, one thread per "
            f"usable CPU ({results.machine.get('cores', '?')} cores here), each with one BLAS "
            "thread; `fastnn-many-1thread`: the same with FASTNN_THREADS=1; "
            "`fastnn-sequential`: one `fastnn.train` call per network, with the seed "
            "train_many gives it (bitwise the same results); `jax-vmap`: `jax.jit` of "
            "`jax.vmap` over the networks of the `jax` row's `lax.scan` training, each "
            "network's lr a vmapped argument; `torch-vmap`: per step one `torch.func.vmap` "
            "of `torch.func.grad` of `functional_call` on the stacked parameters, then plain "
            "SGD in place. On shuffled cases jax and torch train on each network's row "
            "orders as train_many draws them, drawn before the timed run. Every row was "
            "checked network by network against `fastnn.reference` (rtol 1e-9) before it "
            "was timed.", ""] + notes
    if failed:
        text += ["", "Rows that failed verification (not timed):", ""] + failed
    limits = [many_limit(results, name, g) for name, g in groups.items()]
    if any(limits):
        dgemm = results.machine.get("dgemm_flops")
        text += ["", "The vmap ratios in flop rates (2 flops per multiply-add of the forward "
                 "pass, the weight gradients and the hidden layers' gradients, every network, "
                 f"row and epoch), against the dgemm rate: {dgemm / 1e9:.0f} GFlop/s per core "
                 f"({DGEMM_RATE}).",
                 ""] + [line for line in limits if line]
    return "\n".join(text)


def many_limit(results, name, g):
    """The flop rates of train_many and jax on a case, and the rate 8x jax would need."""
    info = next((r["info"] for r in g["rows"].values() if r.get("info")), {})
    many, jax = results.median(name, MANY_BASE), results.median(name, "jax-vmap")
    if not (many and jax and info.get("widths") and info.get("networks")):
        return None
    dgemm = results.machine.get("dgemm_flops")
    if not dgemm:
        return None
    flops = info["networks"] * train_flops(info["widths"], info["rows"], info["epochs"])
    cores = results.machine.get("cores") or 1
    top, need = cores * dgemm, VMAP_GOAL * flops / jax
    return (f"- `{name[len('many:'):]}`: {flops / 1e9:.1f} GFlop; train_many runs it at "
            f"{flops / many / 1e9:.0f} GFlop/s on {cores} cores ({flops / many / top:.0%} of "
            f"{cores} × one core's dgemm rate), jax-vmap at {flops / jax / 1e9:.0f} GFlop/s. "
            f"{VMAP_GOAL} times jax's speed would be {need / 1e9:.0f} GFlop/s, {need / top:.2f}× "
            f"{cores} × one core's dgemm rate.")


def many_targets(results):
    s, out = "many", []
    for name in MANY_CASES:
        value = ratio(results.median(name, "fastnn-sequential"), results.median(name, MANY_BASE))
        out.append(bound(f"64 networks: sequential train calls / train_many "
                         f"({name[len('many:'):]})", s, value, "≥ 1.6×", True, 1.6))
    for row, label in (("jax-vmap", "jax vmap / train_many"),
                       ("torch-vmap", "torch vmap / train_many")):
        vals = [(n[len("many:"):], ratio(results.median(n, row), results.median(n, MANY_BASE)))
                for n in MANY_CASES]
        out.append(count_target(s, label, f"≥ {VMAP_GOAL}×",
                                [v for v in vals if v[1] is not None],
                                lambda p: p[1] >= VMAP_GOAL, lambda ps: min(ps, key=lambda p: p[1]),
                                named_vs(VMAP_GOAL)))
    return out


# ----------------------------------------------------------------------- busy
def busy_ratios(w):
    c = {k: v["median"] for k, v in w["configs"].items()}
    return {"loaded / quiet": ratio(c.get("loaded/default"), c.get("quiet/default")),
            "loaded / quiet, FASTNN_THREADS=1": ratio(c.get("loaded/threads1"),
                                                      c.get("quiet/threads1")),
            "default / FASTNN_THREADS=1, quiet": ratio(c.get("quiet/default"),
                                                       c.get("quiet/threads1")),
            "default / FASTNN_THREADS=1, loaded": ratio(c.get("loaded/default"),
                                                        c.get("loaded/threads1"))}


def busy_section(results):
    b = results.busy
    if not b:
        return ""
    configs = ["quiet/default", "loaded/default", "quiet/threads1", "loaded/threads1"]
    rows = []
    for label, w in b["workloads"].items():
        r = busy_ratios(w)
        rows.append([label] + [fmt_time(w["configs"].get(c, {}).get("median")) for c in configs]
                    + [fmt_ratio(v) for v in r.values()])
    header = ["workload", "quiet", "loaded", "quiet, T=1", "loaded, T=1"] + list(
        busy_ratios(next(iter(b["workloads"].values()))))
    s = b["source"]
    return "\n".join([
        table(header, rows), "",
        f"Source: `{s['file']}` ({s['datetime']} UTC, `{s['command']}`), "
        f"{b['settings']['rounds']} rounds. fastnn only, each workload in fresh worker "
        "processes; \"loaded\": another process runs `while True: pass` meanwhile; "
        "\"T=1\": FASTNN_THREADS=1; default: no thread variable set. Medians over rounds "
        "of each worker's median. " + _busy_load(b) + "Workloads: " + "; ".join(
            f"{label} = {describe_point(w['info']) if w['kind'] == 'grid' else w['key']}"
            for label, w in b["workloads"].items()) + "."])


def _busy_load(b):
    loads = {c: statistics.median(v) for c, v in b.get("load_average_before", {}).items() if v}
    if not loads:
        return ""
    return ("Median 1-minute load average before a measurement (other users of the machine; "
            "the spinner adds about 1): " + ", ".join(f"{c} {v:.2f}" for c, v in loads.items())
            + ". ")


def busy_targets(results):
    b = results.busy
    items = [] if not b else [(label, busy_ratios(w)) for label, w in b["workloads"].items()]

    def over(key, goal, limit):
        vals = [(lab, r[key]) for lab, r in items if r[key] is not None]
        return count_target("busy", key, goal, vals, lambda p: p[1] <= limit,
                            lambda ps: max(ps, key=lambda p: p[1]), named_vs(limit))
    return [over("loaded / quiet", "≤ 2×", 2.0),
            over("default / FASTNN_THREADS=1, loaded", "≤ 1.1×", 1.1),
            over("default / FASTNN_THREADS=1, quiet", "≤ 1.1×", 1.1)]


# -------------------------------------------------------------------- startup
def derived(results, group, row, key):
    r = results.groups.get(group, {}).get("rows", {}).get(row)
    return None if r is None else r.get("info", {}).get("derived", {}).get(key)


def startup_section(results):
    rows = []
    for name in ("python", "numpy", "numba", "fastnn"):
        g = results.groups.get("startup-import", {}).get("rows", {}).get(name)
        if g:
            python = name == "python"
            what = "interpreter start-up (`python -c pass`)" if python else f"`import {name}`"
            inner = derived(results, "startup-import", name, "import_s")
            rows.append([what, "—" if python else fmt_time(inner), fmt_time(g["median"], g)])
    for path, g in results.groups.get("startup-compile", {}).get("rows", {}).items():
        paths = g["info"].get("paths", [path])
        per_path = g["info"].get("derived", {}).get("per_path_s", {})
        split = "" if len(per_path) < 2 else " (" + ", ".join(
            f"{p} {fmt_time(s)}" for p, s in per_path.items()) + ")"
        rows.append([f"first-ever call, empty cache: {' + '.join(paths)}, "
                     f"{g['info'].get('dtype')}",
                     fmt_time(derived(results, "startup-compile", path, "compile_s")) + split,
                     fmt_time(g["median"], g)])
    for path, g in results.groups.get("startup-first-call", {}).get("rows", {}).items():
        d = g["info"].get("derived", {})
        rows.append([f"first call with a warm cache, minus a warm call: {path}",
                     fmt_time(d.get("first_call_extra_s")), fmt_time(g["median"], g)])
    if not rows:
        return ""
    groups = [results.groups[n] for n in ("startup-import", "startup-compile", "startup-first-call")
              if n in results.groups]
    return "\n".join([table(["start-up cost", "measured in the fresh process", "whole subprocess"],
                            rows), "", source_line(groups), "",
                      "Paths (bench/_paths.py, 3 epochs each): generic = mlp3_gd's shape "
                      "(any batch size, loss, optimizer), sample = mlp3_sgd (batch_size=1, "
                      "widths ≤ 8), gram = relu2 (full batch of 64 rows × 1000 features). "
                      "A compile row's fresh-process figure is the sum over its paths of "
                      "(first call − fastest warm call).", "",
                      "What limits the compile rows: each path compiles one generic core for "
                      "every loss, optimizer and layer kind (BLAS and the small-layer loops), "
                      "by design; what each part costs, what was tried, and the same code's "
                      "compile times on other days of this machine: docs/design.md "
                      "(\"Where the generic path's first call goes\")."])


def startup_targets(results):
    s = "start-up"
    out = [bound("`import fastnn`", s, derived(results, "startup-import", "fastnn", "import_s"),
                 "≤ 0.6 s", False, 0.6, shown=fmt_time(derived(results, "startup-import", "fastnn",
                                                                "import_s")))]
    firsts = [(p, g["info"].get("derived", {}).get("first_call_extra_s")) for p, g in
              results.groups.get("startup-first-call", {}).get("rows", {}).items()]
    out.append(count_target(s, "first call with a warm cache − warm call, per path", "≤ 0.15 s",
                            [f for f in firsts if f[1] is not None], lambda p: p[1] <= 0.15,
                            lambda ps: max(ps, key=lambda p: p[1]),
                            lambda p: f"{fmt_time(p[1])} ({p[0]})"))
    compiles = [(p, derived(results, "startup-compile", p, "compile_s"))
                for p in results.groups.get("startup-compile", {}).get("rows", {}) if p != "all"]
    out.append(count_target(s, "first-ever compile, one path (float64)", "≤ 5 s",
                            [c for c in compiles if c[1] is not None], lambda p: p[1] <= 5.0,
                            lambda ps: max(ps, key=lambda p: p[1]),
                            lambda p: f"{fmt_time(p[1])} ({p[0]})"))
    total = derived(results, "startup-compile", "all", "compile_s")
    out.append(bound("first-ever compile, every path in one process (float64)", s, total,
                     "≤ 15 s", False, 15.0, shown=fmt_time(total)))
    return out


# ----------------------------------------------------------------------- plot
def write_png(results, path):
    """numpy/fastnn and fastnn/gemm-floor against multiply-adds per step; False without
    matplotlib or grid results."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    pts = [(macs_step(i), i, m) for _, i, m, _ in grid_points(results)
           if macs_step(i) and m.get("fastnn")]
    if not pts:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    panels = [(axes[0], "numpy", True, "numpy / fastnn (higher: fastnn faster)",
               [(1, "1×"), (3, "median goal 3×"), (5, "tiny goal 5×")]),
              (axes[1], "gemm-floor", False, "fastnn / gemm-floor (lower: closer to the products)",
               [(1, "1×"), (1.15, "BLAS-sized goal 1.15×")])]
    for ax, other, over_fastnn, title, lines in panels:
        _plot_panel(ax, pts, other, over_fastnn, title, lines)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


COLORS = {"relu": "tab:blue", "sigmoid": "tab:orange", "tanh": "tab:green"}
MARKERS = {"blas": "s", "tiny": "^", "": "o"}


def _plot_panel(ax, pts, other, over_fastnn, title, lines):
    for macs, info, m in pts:
        if not m.get(other):
            continue
        r = m[other] / m["fastnn"] if over_fastnn else m["fastnn"] / m[other]
        ax.scatter(macs, r, color=COLORS.get(info.get("activation"), "gray"),
                   marker=MARKERS.get(info.get("size_class") or "", "o"),
                   facecolors="none" if info.get("dtype") == "float32" else None, s=45)
    for k, (y, text) in enumerate(lines):
        ax.axhline(y, color="gray", lw=0.8, ls="--")
        ax.annotate(text, (0.01, y), xycoords=("axes fraction", "data"), fontsize=8,
                    color="gray", va="bottom" if k else "top")  # 1x's label below its line
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("forward multiply-adds per step (all layers)")
    ax.set_title(title, fontsize=10)
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=c, marker="o", ls="", label=a) for a, c in COLORS.items()]
    handles += [Line2D([], [], color="k", marker=mk, ls="",
                       label={"blas": "every layer ≥ 32k", "tiny": "every layer < 4k",
                              "": "in between"}[k]) for k, mk in MARKERS.items()]
    handles.append(Line2D([], [], color="k", marker="o", ls="", mfc="none",
                          label="float32 (hollow)"))
    ax.legend(handles=handles, fontsize=7, loc="best")


# --------------------------------------------------------------------- report
def all_targets(results):
    return (verification_target(results) + seed_targets(results) + hooks_targets(results)
            + grid_targets(results)
            + classify_targets(results) + many_targets(results) + busy_targets(results)
            + startup_targets(results))


# The README's summary: the targets whose label starts with one of these.
README_TARGETS = ("relu2: numpy / fastnn", "sigmoid2: numpy / fastnn", "mlp3_gd: numpy / fastnn",
                  "mlp3_sgd: numpy / fastnn", "no point below", "median numpy / fastnn",
                  "every layer", "tanh and sigmoid", "sklearn fit / fastnn",
                  "torch eager / fastnn", "64 networks", "jax vmap", "loaded / quiet",
                  "first-ever compile", "first call with a warm cache", "relu2: a callback",
                  "mlp3_gd: a callback")
README_BEGIN = "<!-- perf-summary: generated by `python bench/report.py`; do not edit by hand -->"
README_END = "<!-- perf-summary end -->"


def readme_summary(results):
    """The README's short table: the key targets, and how many of all were met."""
    targets = all_targets(results)
    measured = [t for t in targets if t.met is not None]
    key = [t for t in targets if t.label.startswith(README_TARGETS)]
    days = sorted(s["datetime"][:10] for s in results.sources if s["datetime"])
    when = days[0] if days and days[0] == days[-1] else "–".join(days[:1] + days[-1:])
    return "\n".join([
        f"{sum(t.met for t in measured)} of {len(measured)} measured targets met, in runs of "
        f"{when or 'unknown date'} on {results.machine.get('cores', '?')} cores (every "
        "target and row: [docs/performance.md](docs/performance.md)).", "",
        table(["area", "target", "goal", "measured", "met"], [t.cells() for t in key],
              ["l", "l", "l", "r", "l"])])


def write_readme(results, path):
    """Replace the README's summary between its markers; False when they are missing."""
    with open(path) as f:
        text = f.read()
    if README_BEGIN not in text or README_END not in text:
        return False
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    with open(path, "w") as f:
        f.write(head + README_BEGIN + "\n" + readme_summary(results) + "\n" + README_END + tail)
    return True


def report(results, command, png_name):
    targets = all_targets(results)
    measured = [t for t in targets if t.met is not None]
    parts = [f"<!-- generated by `{command}` (bench/report.py); do not edit by hand -->",
             "# Performance", "",
             "Every number below comes from the result files named in each section; nothing "
             "is typed by hand. Medians of whole training runs; one BLAS thread for every row "
             "(threadpoolctl, `torch.set_num_threads(1)`, single-threaded XLA); every row "
             "checked against `fastnn.reference` before it was timed. Ratios come from one "
             "run in which a group's rows were timed alternately (bench/grid.py), unless a "
             "section says pytest-benchmark. This is a shared 2-core VM: single rows move by "
             "10–50% between runs; compare ratios within a run.", "",
             machine_section(results), "", "## Targets", "",
             f"{sum(t.met for t in measured)} of {len(measured)} measured targets met; "
             f"{len(targets) - len(measured)} not measured in these results.", "",
             table(["area", "target", "goal", "this run", "met"], [t.cells() for t in targets],
                   ["l", "l", "l", "r", "l"])]
    for title, body in (("Seed workloads", seeds_section(results)),
                        ("Hooks", hooks_section(results)),
                        ("Grid", grid_section(results, png_name)),
                        ("Activations", act_section(results)),
                        ("Classification (`classify`)", classify_section(results)),
                        ("Many networks", many_section(results)),
                        ("Busy machine", busy_section(results)),
                        ("Start-up and compile", startup_section(results))):
        parts += ["", f"## {title}", "", body or "Not measured in these results."]
    parts += ["", "## Reproduce", "", "```",
              "python bench/report.py --run          # everything, then this page",
              "python bench/grid.py                  # the grid alone (interleaved)",
              "python bench/grid.py --groups many    # K networks per call (interleaved)",
              "python bench/busy.py                  # the busy-machine runs",
              "python bench/grid.py --groups hooks   # callbacks and printing (interleaved)",
              "pytest --benchmark-only               # pytest-benchmark, every group",
              "```"]
    return "\n".join(parts) + "\n"


def run_pieces(pieces):
    os.makedirs(RESULTS, exist_ok=True)
    for piece in pieces:
        cmd, _ = RUNS[piece]
        print("running: " + " ".join(cmd), file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, cwd=ROOT, stdout=sys.stderr)
        if proc.returncode != 0:  # a failed verification still leaves its results to report
            print(f"{piece} exited with {proc.returncode}; reporting what was recorded",
                  file=sys.stderr)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", nargs="*", help="result files (default: bench/results/*.json)")
    ap.add_argument("--run", action="store_true", help="measure first (see --only)")
    ap.add_argument("--only", default=",".join(RUNS), help="pieces --run measures: "
                    + ",".join(RUNS))
    ap.add_argument("--out", default=DOC, help="the Markdown file (default docs/performance.md)")
    ap.add_argument("--png", default=PNG, help="the plot (default docs/performance.png)")
    ap.add_argument("--readme", default=README, help="the README whose summary table to "
                    "rewrite (default README.md; '' for none)")
    args = ap.parse_args(argv)
    if args.run:
        run_pieces([p for p in args.only.split(",") if p])
    paths = args.json or sorted(glob.glob(os.path.join(RESULTS, "*.json")))
    if not paths:
        ap.error("no result files: give some, or --run")
    results = load(paths)
    png_ok = write_png(results, args.png)
    png_name = None
    if png_ok:  # the image link is relative to the Markdown file
        png_name = os.path.relpath(args.png, os.path.dirname(os.path.abspath(args.out)))
    command = "python bench/report.py" + (" --run" if args.run else "") + (
        " " + " ".join(os.path.relpath(p, ROOT) for p in args.json) if args.json else "")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(report(results, command, png_name))
    if args.readme and not write_readme(results, args.readme):
        print(f"{args.readme} has no perf-summary markers; left as it was", file=sys.stderr)
    print(f"wrote {os.path.relpath(args.out, ROOT)}"
          + (f" and {os.path.relpath(args.png, ROOT)}" if png_ok else " (no plot: matplotlib "
             "or grid results missing)"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
