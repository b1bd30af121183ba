"""Turn a pytest-benchmark run of bench/ into the README's Markdown performance table.

Usage, from the repository root::

    # run the benchmarks yourself, then report
    pytest --benchmark-only --benchmark-json=results.json
    python bench/report.py results.json > table.md

    # or let the script run them (results kept in bench-results.json)
    python bench/report.py --run > table.md
    python bench/report.py --run --json /tmp/r.json -- -k "relu2 or startup"

With ``--run`` the pytest output goes to stderr and only the table to stdout;
``--json`` keeps the raw results (otherwise a temporary file is used). The
optional peers come from ``pip install -e ".[compare]"`` (torch, jax[cpu]).

Everything after ``--`` goes to pytest. Several JSON files may be given; a
benchmark present in more than one is taken from the last. The report has:
machine and library versions, per workload and dtype the median time of each
implementation and the ratios numpy/fastnn, fastnn/gemm-floor, jax/fastnn and
torch/fastnn (peers only when installed), issue 3's targets against this run,
the start-up costs and the width sweep. All ratios come from one run: never mix
runs from different machines or loads. Timings on a busy machine are noisy;
rows whose interquartile range exceeds 10% of the median are marked ``~``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMPL_ORDER = ["fastnn", "fastnn-nocheck", "numpy", "gemm-floor", "torch", "jax"]
WORKLOAD_ORDER = ["relu2", "sigmoid2", "mlp3_gd", "mlp3_sgd"]
DTYPE_ORDER = ["float64", "float32"]


# ------------------------------------------------------------------- loading
def load(paths):
    """(machine_info, datetime, {group: {impl: benchmark dict}})"""
    machine, when, groups = {}, "", {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        machine = data.get("machine_info", machine)
        when = data.get("datetime", when)
        for b in data.get("benchmarks", []):
            impl = b.get("extra_info", {}).get("impl") or b["name"]
            groups.setdefault(b.get("group") or b["name"], {})[impl] = b
    return machine, when, groups


def median(b):
    return None if b is None else b["stats"]["median"]


def noisy(b):
    s = b["stats"]
    return s.get("rounds", 0) >= 3 and s.get("iqr", 0.0) > 0.10 * s["median"]


# ---------------------------------------------------------------- formatting
def fmt_time(seconds, b=None):
    if seconds is None:
        return "—"
    if seconds >= 10:
        text = f"{seconds:.1f} s"
    elif seconds >= 1:
        text = f"{seconds:.2f} s"
    elif seconds >= 1e-3:
        text = f"{seconds * 1e3:.3g} ms"
    else:
        text = f"{seconds * 1e6:.3g} µs"
    return ("~" + text) if b is not None and noisy(b) else text


def fmt_ratio(num, den):
    if num is None or den is None or den <= 0:
        return "—"
    r = num / den
    return f"{r:.0f}×" if r >= 100 else f"{r:.3g}×"


def table(header, rows, align=None):
    align = align or ["l"] + ["r"] * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------ sections
def machine_section(machine, when):
    fx = machine.get("fastnn", {})
    cpu = fx.get("cpu_model") or machine.get("cpu", {}).get("brand_raw") or machine.get("processor", "?")
    cores = fx.get("cores") or machine.get("cpu", {}).get("count", "?")
    versions = fx.get("versions") or {"python": machine.get("python_version", "?")}
    out = [f"Machine: {cpu}, {cores} cores, {machine.get('system', '')} {machine.get('release', '')}".rstrip()
           + (f"; run of {when[:19].replace('T', ' ')} UTC." if when else ".")]
    names = [k for k in ("python", "numpy", "numba", "llvmlite", "scipy", "torch", "jax", "jaxlib")
             if k in versions]
    out.append("Versions: " + ", ".join(f"{k} {versions[k]}" for k in names) + ".")
    blas = fx.get("blas", {})
    if blas:
        out.append("BLAS: " + "; ".join(f"{k} uses {v}" for k, v in blas.items())
                   + " (fastnn's compiled kernels call SciPy's BLAS; the NumPy loop and the "
                   "gemm-floor use NumPy's).")
    if fx.get("threads_env"):
        out.append("Thread settings: " + ", ".join(f"{k}={v}" for k, v in fx["threads_env"].items()) + ".")
    return "\n".join(out)


def workload_section(groups):
    present = {impl for g, rows in groups.items() if not g.startswith(("sweep", "startup"))
               for impl in rows}
    impls = [i for i in IMPL_ORDER if i in present]
    ratio_cols = [("numpy", "fastnn", "numpy / fastnn"), ("fastnn", "gemm-floor", "fastnn / gemm-floor"),
                  ("jax", "fastnn", "jax / fastnn"), ("torch", "fastnn", "torch / fastnn")]
    ratio_cols = [c for c in ratio_cols if c[0] in impls and c[1] in impls]
    header = ["workload", "dtype"] + impls + [c[2] for c in ratio_cols]
    rows, notes = [], []
    for w in WORKLOAD_ORDER:
        for dt in DTYPE_ORDER:
            g = groups.get(f"{w}-{dt}")
            if not g:
                continue
            med = {i: median(g.get(i)) for i in impls}
            rows.append([w, dt] + [fmt_time(med[i], g.get(i)) for i in impls]
                        + [fmt_ratio(med[a], med[b]) for a, b, _ in ratio_cols])
            if dt == DTYPE_ORDER[0] or not any(n.startswith(f"- `{w}`") for n in notes):
                desc = next((b["extra_info"].get("description") for b in g.values()
                             if b.get("extra_info", {}).get("description")), None)
                if desc:
                    notes.append(f"- `{w}`: {desc}")
    if any(r[0].startswith("mlp3") for r in rows):
        notes.append("- mlp3's layers have 4 units: there the gemm-floor is mostly NumPy's "
                     "per-call overhead (about a microsecond per product), not arithmetic, "
                     "and fastnn uses no BLAS, so fastnn / gemm-floor below 1× is expected.")
    if not rows:
        return ""
    text = [table(header, rows, ["l", "l"] + ["r"] * (len(header) - 2)), ""]
    text.append("Median wall time of one whole training run (fresh copies of the initial "
                "parameters each round). Ratios above 1× in `numpy / fastnn`, `jax / fastnn` "
                "and `torch / fastnn` mean fastnn is faster; `fastnn / gemm-floor` is how far "
                "fastnn is above the cost of a per-epoch loop's matrix products alone "
                "(below 1× on the Gram path, which does fewer).")
    text += [""] + notes
    return "\n".join(text)


def _ratio(groups, group_a, impl_a, group_b, impl_b):
    a = median(groups.get(group_a, {}).get(impl_a))
    b = median(groups.get(group_b, {}).get(impl_b))
    return None if a is None or b is None else a / b


def _derived(groups, group, key, impl=None):
    """A derived start-up number (extra_info["derived"][key]) of a group's row."""
    for name, b in groups.get(group, {}).items():
        if impl is not None and name != impl:
            continue
        v = b.get("extra_info", {}).get("derived", {}).get(key)
        if v is not None:
            return v
    return None


# Issue 3's targets: (label, goal text, ("ratio", group_a, impl_a, group_b, impl_b) or
# ("startup", group, derived key, impl), at least (True) or at most (False), bound)
TARGETS = [
    ("relu2: numpy / fastnn", "≥ 1.3×",
     ("ratio", "relu2-float64", "numpy", "relu2-float64", "fastnn"), True, 1.3),
    ("relu2: fastnn / gemm-floor", "≤ 1.10×",
     ("ratio", "relu2-float64", "fastnn", "relu2-float64", "gemm-floor"), False, 1.10),
    ("sigmoid2: numpy / fastnn", "≥ 1.8×",
     ("ratio", "sigmoid2-float64", "numpy", "sigmoid2-float64", "fastnn"), True, 1.8),
    ("sigmoid2: fastnn / gemm-floor", "≤ 1.10×",
     ("ratio", "sigmoid2-float64", "fastnn", "sigmoid2-float64", "gemm-floor"), False, 1.10),
    ("mlp3_gd: numpy / fastnn", "≥ 25×",
     ("ratio", "mlp3_gd-float64", "numpy", "mlp3_gd-float64", "fastnn"), True, 25),
    ("mlp3_gd: jax / fastnn", "≥ 4×",
     ("ratio", "mlp3_gd-float64", "jax", "mlp3_gd-float64", "fastnn"), True, 4),
    ("mlp3_sgd: numpy / fastnn", "≥ 500×",
     ("ratio", "mlp3_sgd-float64", "numpy", "mlp3_sgd-float64", "fastnn"), True, 500),
    ("mlp3_sgd: jax / fastnn", "≥ 8×",
     ("ratio", "mlp3_sgd-float64", "jax", "mlp3_sgd-float64", "fastnn"), True, 8),
    ("relu2: numpy float64 / fastnn float32", "≥ 2.5×",
     ("ratio", "relu2-float64", "numpy", "relu2-float32", "fastnn"), True, 2.5),
    *[(f"{w}: check_finite cost, fastnn / fastnn-nocheck", "≤ 1.02×",
       ("ratio", f"{w}-float64", "fastnn", f"{w}-float64", "fastnn-nocheck"), False, 1.02)
      for w in ("relu2", "sigmoid2", "mlp3_gd", "mlp3_sgd")],
    ("`import fastnn`", "≤ 0.6 s",
     ("startup", "startup-import", "import_s", "fastnn"), False, 0.6),
    ("first call with a warm cache, minus a warm call", "≤ 0.15 s",
     ("startup", "startup-first-call", "first_call_extra_s", None), False, 0.15),
    *[(f"first-ever compile, {w}'s training ({path})", "≤ 10 s",
       ("startup", "startup-compile", "compile_s", f"fastnn-cold-cache-{w}"), False, 10)
      for w, path in (("relu2", "gemm, Gram path"), ("mlp3_gd", "small-layer loops"),
                      ("mlp3_sgd", "one-sample steps"))],
]


def targets_section(groups):
    """Issue 3's targets, each checked against this run."""
    rows = []
    for label, goal, source, at_least, bound in TARGETS:
        if source[0] == "ratio":
            value = _ratio(groups, *source[1:])
            shown = None if value is None else f"{value:.3g}×"
        else:
            value = _derived(groups, *source[1:])
            shown = None if value is None else fmt_time(value)
        if value is None:
            rows.append([label, goal, "not measured", "—"])
        else:
            ok = value >= bound if at_least else value <= bound
            rows.append([label, goal, shown, "yes" if ok else "**no**"])
    return table(["target (float64 unless stated)", "goal", "this run", "met"], rows,
                 ["l", "l", "r", "l"])


def startup_section(groups):
    rows = []
    imp = groups.get("startup-import", {})
    for name in ("python", "numpy", "numba", "fastnn"):
        b = imp.get(name)
        if b is None:
            continue
        inner = b["extra_info"].get("derived", {}).get("import_s")
        what = "interpreter start-up (`python -c pass`)" if name == "python" else f"`import {name}`"
        rows.append([what, "—" if name == "python" else fmt_time(inner), fmt_time(median(b), b)])
    for group, key, what in (("startup-first-call", "first_call_extra_s",
                              "first `train` call with a warm cache, minus a warm call"),
                             ("startup-compile", "compile_s",
                              "first-ever compile, {workload}'s float64 training "
                              "({path}; empty cache)")):
        for b in groups.get(group, {}).values():
            v = b.get("extra_info", {}).get("derived", {}).get(key)
            if v is not None:
                rows.append([what.format(**b["extra_info"]) if "{" in what else what,
                             fmt_time(v), fmt_time(median(b), b)])
    if not rows:
        return ""
    text = table(["start-up cost", "measured in the fresh process", "whole subprocess"], rows)
    fc = groups.get("startup-first-call", {})
    if fc:
        d = next(iter(fc.values()))["extra_info"].get("derived", {})
        if "first_call_s" in d:
            text += (f"\n\nFirst-call benchmark: relu2's shape for 3 epochs, first call "
                     f"{fmt_time(d['first_call_s'])}, warm call {fmt_time(d['warm_call_s'])} "
                     "(medians over fresh processes sharing one warm NUMBA_CACHE_DIR).")
    return text


def sweep_section(groups):
    sweep = {}
    for g, rows in groups.items():
        if g.startswith("sweep-h"):
            for impl, b in rows.items():
                h = b["extra_info"].get("sweep_hidden")
                sweep.setdefault(h, {})[impl] = b
    if not sweep:
        return ""
    rows = []
    epochs = None
    for h in sorted(sweep):
        r = sweep[h]
        med = {i: median(r.get(i)) for i in ("fastnn", "numpy", "gemm-floor")}
        any_b = next(iter(r.values()))
        flops = any_b["extra_info"].get("gemm_flops")
        epochs = any_b["extra_info"].get("epochs", epochs)
        gf = lambda s: "—" if s is None or not flops else f"{flops / s / 1e9:.3g}"  # noqa: E731
        rows.append([h] + [fmt_time(med[i], r.get(i)) for i in med]
                    + [fmt_ratio(med["numpy"], med["fastnn"]),
                       fmt_ratio(med["fastnn"], med["gemm-floor"]),
                       gf(med["fastnn"]), gf(med["gemm-floor"])])
    text = table(["hidden", "fastnn", "numpy", "gemm-floor", "numpy / fastnn",
                  "fastnn / gemm-floor", "fastnn GFLOP/s", "gemm-floor GFLOP/s"], rows)
    return (text + f"\n\nrelu2's shape (64×1000 → hidden → 10, ReLU, SSE, float64), {epochs} epochs; "
            "GFLOP/s counts the floating-point operations of a per-epoch loop's products "
            "only; fastnn's Gram path does fewer, so its figure is an effective rate.")


def report(paths, command):
    machine, when, groups = load(paths)
    parts = ["## Performance", "",
             f"Generated by `{command}` from one `pytest --benchmark-only` run "
             "(see bench/report.py); "
             "medians of whole training runs, every implementation checked against "
             "`fastnn.reference` before it was timed.", "",
             machine_section(machine, when)]
    for title, body in (("Workloads", workload_section(groups)),
                        ("Targets (issues 3 and 4)", targets_section(groups)),
                        ("Start-up", startup_section(groups)),
                        ("Width sweep", sweep_section(groups))):
        if body:
            parts += ["", f"### {title}", "", body]
    return "\n".join(parts) + "\n"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="*", help="pytest-benchmark JSON file(s) to report")
    ap.add_argument("--run", action="store_true", help="run the benchmarks first")
    ap.add_argument("--json", dest="out", default=None,
                    help="where --run keeps its JSON (default: a temporary file, removed)")
    args = ap.parse_args(argv)
    if args.run:
        keep = args.out is not None
        if not keep:
            fd, args.out = tempfile.mkstemp(prefix="fastnn-bench-", suffix=".json")
            os.close(fd)
            os.unlink(args.out)
        cmd = [sys.executable, "-m", "pytest", "bench", "--benchmark-only", "-q",
               "-p", "no:cacheprovider", f"--benchmark-json={args.out}"] + extra
        print("running: " + " ".join(cmd), file=sys.stderr)
        # pytest's own output goes to stderr so that stdout is only the report
        proc = subprocess.run(cmd, cwd=ROOT, stdout=sys.stderr)
        if proc.returncode != 0:
            print(f"pytest exited with {proc.returncode}; reporting what was recorded",
                  file=sys.stderr)
        if not os.path.exists(args.out):
            return proc.returncode or 1
        paths = args.json + [args.out]
        command = "python bench/report.py --run"
        try:
            sys.stdout.write(report(paths, command))
        finally:
            if not keep:
                os.unlink(args.out)
        return 0
    else:
        if not args.json:
            ap.error("give a pytest-benchmark JSON file, or --run")
        paths = args.json
        command = "python bench/report.py " + " ".join(os.path.basename(p) for p in paths)
    sys.stdout.write(report(paths, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
