#!/usr/bin/env python3
"""End-to-end figures for BENCHMARKS.md: the real binary on graphs from shared/bench/gendag.py,
against make (and ninja, when installed) on the same graph.

usage: benches/cli_bench.py [--runs N] [--n-noop 100000] [--n-true 2000] [--bin PATH]
Build first: cargo build --release. Prints a Markdown table; run on a quiet machine.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GENDAG = os.path.join(ROOT, "..", "shared", "bench", "gendag.py")


def timed(cmd, cwd=None, env=None):
    """Wall seconds, user+sys CPU seconds and peak RSS (KiB) of one run of cmd."""
    t0 = time.perf_counter()
    before = os.times()
    p = subprocess.run(
        ["/usr/bin/time", "-f", "%M"] + cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - t0
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
    rss = int(p.stderr.strip().splitlines()[-1])
    return wall, cpu, rss


def series(cmd, runs, cwd=None, env=None):
    results = [timed(cmd, cwd, env) for _ in range(runs)]
    walls = sorted(r[0] for r in results)
    return {
        "median": statistics.median(walls),
        "min": walls[0],
        "cpu": statistics.median(r[1] for r in results),
        "rss_kib": max(r[2] for r in results),
    }


def noop_json(dag_dir):
    """The same graph as workflow-noop.toml, in taskdeck's JSON form."""
    d = json.load(open(os.path.join(dag_dir, "dag.json")))
    tasks = {}
    for t in d["nodes"]:
        spec = {"builtin": "noop"}
        if d["deps"][t]:
            spec["needs"] = d["deps"][t]
        tasks[t] = spec
    path = os.path.join(dag_dir, "workflow-noop.json")
    json.dump({"name": os.path.basename(dag_dir), "tasks": tasks}, open(path, "w"))
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--n-noop", type=int, default=100_000)
    ap.add_argument("--n-true", type=int, default=2000)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "taskdeck"))
    ap.add_argument("--only-true", action="store_true", help="skip the 100,000-noop cases")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="taskdeck-bench-")
    env = dict(os.environ, TASKDECK_HOME=os.path.join(work, "home"))
    td = [a.bin, "run", "--headless", "--quiet"]
    rows = []

    print("load: " + os.popen("uptime").read().strip())
    big = os.path.join(work, "noop")
    journal_ratio = None
    if not a.only_true:
        subprocess.run([sys.executable, GENDAG, "layered", str(a.n_noop), big], check=True, stdout=subprocess.DEVNULL)
        big_json = noop_json(big)
        for label, path in (("TOML", os.path.join(big, "workflow-noop.toml")), ("JSON", big_json)):
            r = series(td + [path], a.runs, env=env)
            rows.append((f"{a.n_noop:,} noop tasks, layered, {label}: run end to end, journal on (SQLite)", r, a.n_noop))
            mem = series(td + ["--store", "memory", path], a.runs, env=env)
            rows.append((f"{a.n_noop:,} noop tasks, layered, {label}: run end to end, in memory", mem, a.n_noop))
            journal_ratio = r["median"] / mem["median"]
            r = series([a.bin, "validate", path], a.runs, env=env)
            rows.append((f"{a.n_noop:,} noop tasks, {label}: validate only", r, a.n_noop))

    small = os.path.join(work, "true")
    subprocess.run(
        [sys.executable, GENDAG, "layered", str(a.n_true), small, "--max-parallel", "2"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    # Scratch files on tmpfs, as in a default install ($XDG_RUNTIME_DIR or /dev/shm); the
    # TASKDECK_HOME set above would otherwise put them on the disk under it (its own row).
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    rt_env = dict(env, TASKDECK_RUNTIME_DIR=tempfile.mkdtemp(prefix="taskdeck-bench-", dir=shm))
    wf = os.path.join(small, "workflow.toml")
    cases = [
        ("make -j2", ["make", "-s", "-j2", "-f", "Makefile"], small, None),
        ("taskdeck, max_parallel = 2, journal on (SQLite)", td + [wf], None, rt_env),
        ("taskdeck, max_parallel = 2, in memory", td + ["--store", "memory", wf], None, rt_env),
        ("taskdeck, max_parallel = 2, journal on, scratch on disk under TASKDECK_HOME", td + [wf], None, env),
    ]
    if shutil.which("ninja"):
        cases.insert(1, ("ninja -j2", ["ninja", "-j2", "-f", "build.ninja"], small, None))

    def before(label):
        if label.startswith("ninja"):
            shutil.rmtree(os.path.join(small, "o"), ignore_errors=True)
            os.makedirs(os.path.join(small, "o"), exist_ok=True)
            try:
                os.remove(os.path.join(small, ".ninja_log"))
            except FileNotFoundError:
                pass

    # Interleaved (make, taskdeck, ... then again), so a change in the machine's load hits all
    # cases alike.
    results = {label: [] for label, *_ in cases}
    for _ in range(a.runs):
        for label, cmd, cwd, cenv in cases:
            before(label)
            results[label].append(timed(cmd, cwd=cwd, env=cenv or env))
    summary = {}
    for label, *_ in cases:
        runs = results[label]
        walls = sorted(r[0] for r in runs)
        summary[label] = {
            "median": statistics.median(walls),
            "min": walls[0],
            "cpu": statistics.median(r[1] for r in runs),
            "rss_kib": max(r[2] for r in runs),
        }
        rows.append((f"{a.n_true:,} `true` tasks: {label}", summary[label], a.n_true))
    make = summary["make -j2"]
    tdr = summary[cases[-3][0]]
    tdm = summary[cases[-2][0]]
    tdd = summary[cases[-1][0]]
    shutil.rmtree(rt_env["TASKDECK_RUNTIME_DIR"], ignore_errors=True)

    print(f"{a.runs} runs each; wall time median (min); CPU = user+sys median; peak RSS max\n")
    print("| case | wall median | wall min | CPU | peak RSS | RSS per task |")
    print("|---|---|---|---|---|---|")
    for label, r, n in rows:
        print(
            f"| {label} | {r['median']:.3f} s | {r['min']:.3f} s | {r['cpu']:.2f} s | "
            f"{r['rss_kib'] / 1024:.0f} MiB | {r['rss_kib'] * 1024 / n:,.0f} B |"
        )
    print(f"\ntaskdeck / make (median wall): {tdr['median'] / make['median']:.2f}x journal on, "
          f"{tdm['median'] / make['median']:.2f}x in memory, "
          f"{tdd['median'] / make['median']:.2f}x journal on with scratch on disk")
    print("load: " + os.popen("uptime").read().strip())
    if journal_ratio is not None:
        print(f"journal on / in memory, 100k noop (median wall, last format): {journal_ratio:.2f}x")
    shutil.rmtree(work, ignore_errors=True)


main()
