#!/bin/bash
# CPU time of taskdeck's own threads (not its tasks') on the 2,000-task `true` graph, per build:
# steadier than wall time on a shared host. Needs `perf`. Interleaved rounds, median and min.
#
# usage: benches/engine_cpu.sh ROUNDS "LABEL|BINARY|EXTRA ARGS" ...
#   e.g. benches/engine_cpu.sh 9 "old|/tmp/td-old|" "new|target/release/taskdeck|" \
#          "new-mem|target/release/taskdeck|--store memory"
set -euo pipefail
rounds=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
shm=$(mktemp -d -p /dev/shm)
trap 'rm -rf "$work" "$shm"' EXIT
python3 "$here/../../shared/bench/gendag.py" layered 2000 "$work/dag" --max-parallel 2 >/dev/null
declare -A cpu
for ((i = 0; i < rounds; i++)); do
  for v in "$@"; do
    IFS='|' read -r label bin extra <<<"$v"
    home=$(mktemp -d -p "$work")
    # -i: the engine process only, not the tasks it starts.
    # shellcheck disable=SC2086
    ms=$(TASKDECK_HOME=$home TASKDECK_RUNTIME_DIR=$shm perf stat -i -e task-clock -x, \
      "$bin" run --headless --quiet $extra "$work/dag/workflow.toml" 2>&1 >/dev/null |
      grep task-clock | cut -d, -f1)
    cpu[$label]="${cpu[$label]:-} $ms"
    rm -rf "$home"
  done
done
for v in "$@"; do
  IFS='|' read -r label _ _ <<<"$v"
  echo "$label ${cpu[$label]}" | python3 -c '
import statistics, sys
label, *ms = sys.stdin.read().split()
ms = sorted(float(x) for x in ms)
print(f"{label:12s} engine CPU median {statistics.median(ms):6.1f} ms  min {ms[0]:6.1f} ms")'
done
