#!/usr/bin/env python3
"""How right is the ETA (issue 15)? A farm of --workers local workers runs the
standard spec (bench.py) twice: on a fresh farm (nothing measured yet: the
first estimates come from the running jobs' own progress) and again on the
same farm (it has measured its presets). The API is polled every --poll-s;
at 10, 25, 50 and 75 % progress the delivery's `eta_s` is compared with the
time it actually took from then to its end.

  python3 bench/eta.py [--seconds 12] [--workers 2]

Prints a Markdown table (figures worth keeping go to bench/RESULTS.md).
Nothing here is a test.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import (BIN, REELFARM, log, make_sources, start_redis_and_coordinator,  # noqa: E402
                   stop_processes, wait_for_workers, write_spec)

CHECKPOINTS = (0.10, 0.25, 0.50, 0.75)


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def run_delivery(url, spec, poll_s):
    res = subprocess.run([REELFARM, "--coordinator", url, "submit", spec],
                         capture_output=True, text=True, check=True)
    delivery = res.stdout.strip().splitlines()[-1]
    start = time.monotonic()
    samples = []  # (seconds since submit, progress, eta_s or None, last item)
    items_at = {}  # the items' eta_s when the delivery first reached 25 %
    ended = {}  # item -> seconds since submit when first seen delivered
    while True:
        d = get(f"{url}/api/v1/deliveries/{delivery}")
        t = time.monotonic() - start
        for i in d.get("items", []):
            if i.get("state") == "delivered":
                ended.setdefault(i["name"], t)
        if not items_at and d.get("progress", 0) >= 0.25:
            items_at = {"t": t, "eta": {i["name"]: i.get("eta_s") for i in d.get("items", [])}}
        if d["state"] in ("delivered", "failed", "cancelled"):
            if d["state"] != "delivered":
                raise RuntimeError(f"{delivery} ended {d['state']}")
            if items_at:
                log("items at 25 %: estimated end / actual end (seconds from then)")
                for name, eta in items_at["eta"].items():
                    actual = ended.get(name, t) - items_at["t"]
                    log(f"  {name}: {eta} / {actual:.1f}")
            return t, samples
        # The item whose end is furthest: what the delivery's ETA rests on.
        last = max((i for i in d.get("items", []) if i.get("eta_s") is not None),
                   key=lambda i: i["eta_s"], default=None)
        why = f"{last['name']} {last['state']} {last.get('progress', 0):.0%}" if last else ""
        samples.append((t, d.get("progress", 0), d.get("eta_s"), why))
        time.sleep(poll_s)


def checkpoints(total, samples):
    rows = []
    for mark in CHECKPOINTS:
        hit = next((s for s in samples if s[1] >= mark), None)
        if hit is None:
            rows.append((mark, None, None, None, ""))
            continue
        t, _, eta, why = hit
        actual = total - t
        rows.append((mark, t, eta, actual, why))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=12, help="source length (default 12)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--poll-s", type=float, default=0.5)
    ap.add_argument("--fresh-only", action="store_true", help="only the fresh farm's run")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "reelfarm-bench"))
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    sources = make_sources(args.work, args.seconds)
    state = tempfile.mkdtemp(prefix="eta-", dir=args.work)
    procs = []
    try:
        zmq, url = start_redis_and_coordinator(state, procs)
        for i in range(args.workers):
            procs.append(subprocess.Popen(
                [os.path.join(BIN, "reelfarm-worker"), "--coordinator", zmq,
                 "--name", f"eta-w{i}", "--slots", "1", "--metrics", ""],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(state, f"w{i}.log"), "w")))
        wait_for_workers(url, args.workers, state)
        print(f"# ETA error: standard spec, {args.seconds} s source, {args.workers} workers\n")
        print("| farm | at progress | seconds in | ETA (s) | actual left (s) | error | last to end |")
        print("|---|---|---|---|---|---|---|")
        for run in ("fresh", "measured")[:1 if args.fresh_only else 2]:
            out = os.path.join(state, f"out-{run}")
            spec = write_spec(args.work, f"eta-{run}", sources["h264"], out)
            total, samples = run_delivery(url, spec, args.poll_s)
            log(f"{run}: {total:.1f} s, {len(samples)} polls")
            for mark, t, eta, actual, why in checkpoints(total, samples):
                if t is None:
                    print(f"| {run} | {mark:.0%} | - | - | - | not reached | |")
                elif eta is None:
                    print(f"| {run} | {mark:.0%} | {t:.1f} | none | {actual:.1f} | no estimate | |")
                else:
                    err = (eta - actual) / actual if actual > 0 else 0
                    print(f"| {run} | {mark:.0%} | {t:.1f} | {eta} | {actual:.1f} | {err:+.0%} "
                          f"| {why} |")
            print(f"| {run} | total | {total:.1f} | | | | |")
    finally:
        stop_processes(procs)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
