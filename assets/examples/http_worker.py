#!/usr/bin/env python3
"""A small taskdeck `http` agent (Python standard library only).

taskdeck POSTs each task's assignment message (JSON) to this worker. The worker accepts it at once
(202 with a cancel_url) and works in a thread: it sends heartbeats and log lines to the
assignment's `communication_channels`, then the result.

- `prompt` tasks: with --llm URL (an OpenAI-compatible base URL such as
  http://127.0.0.1:11434/v1) the prompt goes to that model; without it, or when the model cannot
  be reached, the worker reviews the text itself (length and sentence count). If the prompt asks
  for a verdict, the outputs hold `verdict` ("approve" or "revise") and `reason`.
- `run` tasks: the command runs here (sh -c), its output is the log.

    python3 assets/examples/http_worker.py --port 8765 [--llm http://127.0.0.1:11434/v1 --model qwen2.5:0.5b]

GET /health answers 200 (the agent's `health_url`); POST /cancel/ID stops an attempt.
"""

import argparse
import json
import re
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
CANCELLED = set()
LOCK = threading.Lock()


def post(url, body, timeout=10):
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return 0, str(e).encode()


def ask_llm(prompt):
    """The model's answer, or None when it cannot be reached."""
    if not ARGS.llm:
        return None
    status, body = post(
        ARGS.llm.rstrip("/") + "/chat/completions",
        {"model": ARGS.model, "messages": [{"role": "user", "content": prompt}], "stream": False},
        timeout=120,
    )
    if status != 200:
        return None
    try:
        return json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError):
        return None


def review_offline(text):
    """A plain review: enough words, whole sentences."""
    words = len(text.split())
    sentences = len([s for s in re.split(r"[.!?]+", text) if s.strip()])
    ok = words >= 8 and sentences >= 1
    reason = f"{words} words in {sentences} sentences"
    return ("approve" if ok else "revise"), reason


def work(msg, ch, attempt_id):
    details = msg.get("task_details", {})
    log = lambda *lines: post(ch["log"], {"log": list(lines)})
    beat = lambda: post(ch["heartbeat"], {})
    cancelled = lambda: attempt_id in CANCELLED
    beat()
    log(f"worker took {msg['task_id']} attempt {msg['attempt']} of run {msg['run_id']}")
    outputs = {}
    if details.get("kind") == "run":
        proc = subprocess.Popen(
            ["sh", "-c", details["command"]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for line in proc.stdout:
            log(line.rstrip("\n"))
            if cancelled():
                proc.kill()
                return
        code = proc.wait()
        result = {"status": "succeeded" if code == 0 else "failed", "exit_code": code,
                  "error": "" if code == 0 else f"exit code {code}"}
        post(ch["result"], result)
        return
    prompt = details.get("prompt", "")
    answer = ask_llm(prompt)
    beat()
    if cancelled():
        return
    wants_verdict = "verdict" in prompt.lower()
    if answer is not None:
        log(f"model {ARGS.model} answered {len(answer)} characters")
        outputs["text"] = answer
        if wants_verdict:
            verdict = "approve" if "approve" in answer.lower() else "revise"
            outputs.update(verdict=verdict, reason=answer.strip()[:200])
    else:
        log("no model configured or reachable: working without one")
        # The text under review is what follows the first blank line of the prompt.
        text = prompt.split("\n\n", 1)[-1]
        if wants_verdict:
            verdict, reason = review_offline(text)
            outputs.update(text=f"{verdict}: {reason}", verdict=verdict, reason=reason)
        else:
            # Without a model the worker can only pass the material on, and says so.
            outputs["text"] = f"{text.strip()} (passed on unchanged: no model to write with)"
    for step in range(3):  # a little visible progress
        time.sleep(0.2)
        beat()
        log(f"checked part {step + 1} of 3")
    post(ch["result"], {"status": "succeeded", "outputs": outputs})


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            self.reply(200, {"ok": True})
        else:
            self.reply(404, {"error": "not_found"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)) or 0)
        if self.path.startswith("/cancel/"):
            with LOCK:
                CANCELLED.add(self.path[len("/cancel/"):])
            self.reply(200, {"ok": True})
            return
        try:
            msg = json.loads(body)
            ch = msg["communication_channels"]
        except (ValueError, KeyError):
            self.reply(400, {"error": "bad_request", "detail": "expected a taskdeck task_assignment"})
            return
        attempt_id = ch["token"][:16]
        threading.Thread(target=work, args=(msg, ch, attempt_id), daemon=True).start()
        host = self.headers.get("host", f"127.0.0.1:{ARGS.port}")
        self.reply(202, {"cancel_url": f"http://{host}/cancel/{attempt_id}"})

    def log_message(self, fmt, *args):
        print("http_worker:", fmt % args, flush=True)


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--llm", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1")
    p.add_argument("--model", default="qwen2.5:0.5b")
    ARGS = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    print(f"http_worker: listening on http://127.0.0.1:{ARGS.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
