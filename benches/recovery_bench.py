#!/usr/bin/env python3
"""Recovery time for BENCHMARKS.md: how long `taskdeck resume` takes to rebuild a run from a
journal of ~100,000 events, measured as a user sees it (command start to the "resumed run" line).

usage: benches/recovery_bench.py [--tasks 33000] [--runs 5] [--bin PATH]
Build first: cargo build --release. Each noop task journals three events (assigned, started,
succeeded), so 33,000 tasks make ~100,000 events; a last task that sleeps holds the run open so
it can be killed with SIGKILL and resumed.
"""
import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def workflow(path, n):
    with open(path, "w") as f:
        f.write('name = "recovery-bench"\n')
        for i in range(n):
            f.write(f'[tasks.t{i}]\nbuiltin = "noop"\n')
            if i >= 100:
                f.write(f'needs = ["t{i - 100}"]\n')
        f.write('[tasks.hold]\nrun = "sleep 600"\n')
        f.write(f'needs = ["t{n - 1}"]\n')


def wait_for(pred, limit=120):
    start = time.time()
    while time.time() - start < limit:
        if pred():
            return
        time.sleep(0.05)
    sys.exit("timed out")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=33_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "taskdeck"))
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="taskdeck-recovery-")
    env = dict(os.environ, TASKDECK_HOME=os.path.join(work, "home"))
    env.pop("TASKDECK_STORE", None)
    flow = os.path.join(work, "flow.toml")
    workflow(flow, a.tasks)
    db = os.path.join(work, "home", "data", "taskdeck.db")

    p = subprocess.Popen([a.bin, "run", "--headless", "-q", flow], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def holding():
        if not os.path.exists(db):
            return False
        try:
            c = sqlite3.connect(db)
            row = c.execute("select counts from runs").fetchone()
            return row is not None and '"running":1' in row[0]
        except sqlite3.Error:
            return False

    wait_for(holding)
    p.send_signal(signal.SIGKILL)
    p.wait()
    c = sqlite3.connect(db)
    events = c.execute("select sum(count) from events").fetchone()[0]
    size = os.path.getsize(db) + (os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0)

    times = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        r = subprocess.Popen([a.bin, "resume", "--last", "--headless", "-q"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = r.stdout.readline()
        took = time.perf_counter() - t0
        if "resumed run" not in line:
            sys.exit(f"unexpected output: {line!r} {r.stderr.read()}")
        times.append(took)
        r.send_signal(signal.SIGKILL)
        r.wait()
    print(f"journal: {events:,} events of one run, {size / 1e6:.1f} MB on disk")
    print(f"resume (command start to 'resumed run' line), {a.runs} runs: "
          f"median {statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms")
    shutil.rmtree(work, ignore_errors=True)


main()
