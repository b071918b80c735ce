#!/usr/bin/env python3
"""A/B of taskdeck builds on the 2,000-task `true` graph, interleaved with make -j2.

usage: benches/ab_true.py ROUNDS LABEL=BIN[:VAR=VALUE,...][:mem] ...
  e.g. benches/ab_true.py 9 old=/tmp/td-old new=target/release/taskdeck new-mem=target/release/taskdeck::mem

Each round runs make, then every build once (a fresh TASKDECK_HOME each time, scratch files
on /dev/shm), so a change in the machine's load hits every case alike. Prints the median and
minimum wall time, the ratio to make (of the medians, and the median of each round's own
ratio) and the median CPU (user+sys of the whole process tree).
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GENDAG = os.path.join(HERE, "..", "..", "shared", "bench", "gendag.py")


def timed(cmd, **kw):
    c0 = os.times()
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    wall = time.perf_counter() - t0
    c1 = os.times()
    return wall, (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    rounds = int(sys.argv[1])
    variants = []
    for spec in sys.argv[2:]:
        label, rest = spec.split("=", 1)
        binary, *opts = rest.split(":")
        env, mem = {}, False
        for o in opts:
            if o == "mem":
                mem = True
            elif o:
                env.update(kv.split("=", 1) for kv in o.split(","))
        variants.append((label, binary, env, mem))
    work = tempfile.mkdtemp(prefix="taskdeck-ab-")
    dag = os.path.join(work, "true")
    subprocess.run([sys.executable, GENDAG, "layered", "2000", dag, "--max-parallel", "2"], check=True,
                   stdout=subprocess.DEVNULL)
    wf = os.path.join(dag, "workflow.toml")
    shm = tempfile.mkdtemp(prefix="taskdeck-ab-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    results = {"make -j2": []}
    results.update({v[0]: [] for v in variants})
    print("load: " + os.popen("uptime").read().strip())
    for _ in range(rounds):
        results["make -j2"].append(timed(["make", "-s", "-j2", "-f", "Makefile"], cwd=dag))
        for label, binary, extra, mem in variants:
            home = tempfile.mkdtemp(prefix="home-", dir=work)
            env = {**os.environ, "TASKDECK_HOME": home, "TASKDECK_RUNTIME_DIR": shm, **extra}
            cmd = [binary, "run", "--headless", "--quiet"] + (["--store", "memory"] if mem else []) + [wf]
            results[label].append(timed(cmd, env=env))
            shutil.rmtree(home)
    print("load: " + os.popen("uptime").read().strip())
    make_walls = [w for w, _ in results["make -j2"]]
    make = statistics.median(make_walls)
    for label, runs in results.items():
        walls = [w for w, _ in runs]
        med = statistics.median(walls)
        cpu = statistics.median(c for _, c in runs)
        # Paired: each round's time over that round's make, so a drift in the host's speed
        # between rounds cancels out.
        paired = statistics.median(w / m for w, m in zip(walls, make_walls))
        print(f"{label:24s} median {med:.3f} s  min {min(walls):.3f} s  {med / make:.2f}x make"
              f"  paired {paired:.2f}x  CPU {cpu:.2f} s")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(shm, ignore_errors=True)


if __name__ == "__main__":
    main()
