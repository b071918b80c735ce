#!/usr/bin/env bash
# Regenerates the text captures in this folder: runs the console in tmux on the demo and saves
# what `tmux capture-pane -p` shows. Usage: assets/screenshots/capture.sh [path/to/taskdeck]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-./target/debug/taskdeck}
OUT=assets/screenshots
HOME_DIR=$(mktemp -d)
S=taskdeck-shots-$$
trap 'tmux kill-session -t $S 2>/dev/null || true; rm -rf "$HOME_DIR"' EXIT

start() { # width height file
  tmux kill-session -t $S 2>/dev/null || true
  tmux new -d -s $S -x "$1" -y "$2" "TASKDECK_HOME=$HOME_DIR $BIN run $3; sleep 600"
}
wait_for() { # text
  for _ in $(seq 1 200); do
    tmux capture-pane -p -t $S | grep -qF -- "$1" && return 0
    sleep 0.1
  done
  echo "timed out waiting for: $1" >&2; tmux capture-pane -p -t $S >&2; exit 1
}
shot() { sleep 0.4; tmux capture-pane -p -t $S > "$OUT/$1.txt"; }
keys() { tmux send-keys -t $S "$@"; sleep 0.2; }

start 120 40 assets/examples/demo.toml
wait_for "✗ failed"
keys l j j l
shot demo-failed-120x40
keys -l ":retry staging-db"; keys Enter
wait_for "✓ staging-db"
keys -l "/release"; keys Enter
wait_for "waiting_approval"
shot demo-waiting-approval-120x40
keys a
wait_for "✓ succeeded"
keys Escape; keys Tab Tab Tab Tab
shot demo-succeeded-logs-focus-120x40
keys Escape; keys -l "/staging-db"; keys Enter; keys Escape; keys -; keys -
shot demo-dots-120x40
keys -
shot demo-overview-120x40
keys +; keys +; keys +
keys t; keys l
shot demo-tree-120x40
keys '?'
shot help-120x40

start 80 24 assets/examples/demo.toml
wait_for "✗ failed"
keys l j j l
shot demo-failed-80x24
keys Enter
shot demo-task-detail-80x24
keys Tab
shot demo-logs-80x24
keys Tab
shot demo-agents-80x24
keys Tab
shot demo-gates-80x24
keys Escape; keys -l ":re"
shot palette-80x24
keys Escape; keys c
shot confirm-cancel-80x24
keys n; keys -
shot demo-compact-80x24

# History: a headless run killed mid-way is offered when `taskdeck console` opens; a past run
# opens read-only.
TASKDECK_HOME=$HOME_DIR $BIN run assets/examples/demo.toml --headless -q >/dev/null 2>&1 &
P=$!
sleep 2; kill -9 $P; wait $P 2>/dev/null || true
console() { # width height
  tmux kill-session -t $S 2>/dev/null || true
  tmux new -d -s $S -x "$1" -y "$2" "TASKDECK_HOME=$HOME_DIR $BIN console; sleep 600"
}
console 120 40
wait_for "R resumes interrupted run"
shot history-120x40
keys j; keys Enter
wait_for "read-only"
keys l; keys j; keys j; keys l
shot past-run-read-only-120x40
console 80 24
wait_for "R resumes interrupted run"
shot history-80x24
keys R
shot confirm-resume-80x24
keys y
wait_for "resumed run"
shot resumed-80x24
