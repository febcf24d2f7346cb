#!/usr/bin/env python3
"""reelfarm benchmark (issue 5): naive FFmpeg vs the farm, in one run.

Measures, interleaved, the median of --reps repetitions of:
  naive     one FFmpeg per deliverable, run directly, one after another, with
            exactly the argv the farm plans for whole deliverables
            (`reelfarm plan --json --piece-cost 0`);
  farm      `reelfarm run` of the same spec (private Redis, coordinator,
            --workers local workers sharing the machine's cores; the plan is
            cut by cost, --piece-cost);
  direct    the farm's own plan (`reelfarm plan --json --piece-cost P`) run
            directly with the same parallelism: the farm's overhead is
            farm / direct - 1;
for the standard spec on a 1080p25 H.264 source with noise, and again on a
ProRes 422 HQ source (costlier to decode).

Then a virtual cluster: N workers each confined to 2/N of a core with a
cgroup CPU quota (v1 cpu.cfs_quota_us or v2 cpu.max) against 1 worker
confined to 2/N of a core, N in --cluster-sizes, with frame counts of every
output checked against the source.

Prints a Markdown report (also written to --report). See bench/README.md.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bin")
REELFARM = os.path.join(BIN, "reelfarm")

STANDARD_SPEC = """version: 1
name: {name}
source: {source}
output_dir: {out}
subtitles:
  en: subs.srt
deliverables:
  - {{name: master, preset: master-prores}}
  - {{name: web, preset: web-h264, height: 720}}
  - {{name: vertical, preset: social-h264, aspect: "9:16", height: 1920}}
  - {{name: square, preset: social-h264, aspect: "1:1", height: 1080}}
  - {{name: web-subtitled, preset: web-h264, height: 720, subtitles: {{language: en, mode: burn}}}}
"""


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def run(argv, **kw):
    return subprocess.run(argv, check=True, **kw)


def make_sources(work, seconds, gop=50):
    """The standard source (1080p25, noise, stereo, a key frame every `gop`
    frames, a fixed GOP: at most 2 s, as camera and mezzanine H.264 files
    have) and its
    ProRes 422 HQ twin (every frame a key frame)."""
    h264 = os.path.join(work, f"source-h264-{seconds}s-g{gop}.mov")
    prores = os.path.join(work, f"source-prores-{seconds}s-g{gop}.mov")
    if not os.path.exists(h264):
        log(f"generating {h264}")
        run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=25:duration={seconds},"
                                  "noise=alls=12:allf=t+u",
             "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
             "-f", "lavfi", "-i", f"sine=frequency=660:sample_rate=48000:duration={seconds}",
             "-filter_complex", "[1:a][2:a]amerge=inputs=2[a]", "-map", "0:v", "-map", "[a]",
             "-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-g", str(gop),
             "-keyint_min", str(gop), "-sc_threshold", "0", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-b:a", "192k", h264])
    if not os.path.exists(prores):
        log(f"generating {prores}")
        run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", h264, "-c:v", "prores_ks",
             "-profile:v", "3", "-pix_fmt", "yuv422p10le", "-c:a", "pcm_s24le", prores])
    subs = os.path.join(work, "subs.srt")
    with open(subs, "w") as f:
        for i in range(0, seconds, 3):
            f.write(f"{i // 3 + 1}\n00:00:{i:02d},000 --> 00:00:{i + 2:02d},500\n"
                    f"Line {i // 3 + 1}: the farm burns this in\n\n")
    return {"h264": h264, "prores": prores}


def write_spec(work, name, source, out, template=STANDARD_SPEC):
    path = os.path.join(work, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(template.format(name=name, source=os.path.basename(source), out=out))
    return path


def plan(spec, piece_cost, extra=()):
    res = subprocess.run([REELFARM, "plan", "--json", "--piece-cost", str(piece_cost), *extra, spec],
                         check=True, capture_output=True, text=True)
    return json.loads(res.stdout)


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


def run_jobs_directly(jobs, parallel):
    """Runs planned jobs (FFmpeg argv as planned) with `parallel` at a time,
    each only after its dependencies; returns the wall time."""
    start = time.monotonic()
    done, running, pending = set(), {}, list(jobs)
    while pending or running:
        for job in list(pending):
            if len(running) >= parallel:
                break
            if all(d in done for d in job.get("depends_on", [])):
                for f in job.get("write_files", []):
                    os.makedirs(os.path.dirname(f["path"]), exist_ok=True)
                    with open(f["path"], "w") as fh:
                        fh.write(f["content"])
                for out in job["outputs"]:
                    os.makedirs(os.path.dirname(out["path"]), exist_ok=True)
                running[job["id"]] = subprocess.Popen(job["argv"], stdout=subprocess.DEVNULL,
                                                      stderr=subprocess.DEVNULL)
                pending.remove(job)
        for jid, proc in list(running.items()):
            if proc.poll() is not None:
                if proc.returncode != 0:
                    raise RuntimeError(f"job {jid} failed directly (exit {proc.returncode})")
                done.add(jid)
                del running[jid]
        time.sleep(0.02)
    return time.monotonic() - start


def reelfarm_run(spec, workers, extra=()):
    start = time.monotonic()
    res = subprocess.run([REELFARM, "run", "--workers", str(workers), *extra, spec],
                         capture_output=True, text=True)
    wall = time.monotonic() - start
    if res.returncode != 0:
        raise RuntimeError(f"reelfarm run failed ({res.returncode}): {res.stderr[-2000:]}")
    return wall


def frames_of(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
                          "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path],
                         check=True, capture_output=True, text=True).stdout.strip()
    return int(out.split(",")[0])


POSTER_SPEC = """version: 1
name: {name}
source: {source}
output_dir: {out}
deliverables:
  - {{name: poster, preset: thumbnail-jpg}}
"""


def startup_cost(work, source, workers, reps):
    """The farm's fixed cost: `reelfarm run` of one poster frame (private
    Redis, coordinator, workers probing their encoders, submit, verify,
    manifest, shutdown) against that poster's FFmpeg run directly."""
    spec = write_spec(work, "startup", source, "out-startup", POSTER_SPEC)
    jobs = plan(spec, 0)["jobs"]
    farm_t, direct_t = [], []
    for _ in range(reps):
        fresh(os.path.join(work, "out-startup"))
        farm_t.append(reelfarm_run(spec, workers))
        fresh(os.path.join(work, "out-startup"))
        direct_t.append(run_jobs_directly(jobs, 1))
    return {"farm": statistics.median(farm_t), "direct": statistics.median(direct_t)}


def compare(work, sources, reps, workers, piece_cost):
    rows = []
    for kind, source in sources.items():
        naive_t, farm_t, direct_t = [], [], []
        spec_naive = write_spec(work, f"naive-{kind}", source, f"out-naive-{kind}")
        spec_farm = write_spec(work, f"farm-{kind}", source, f"out-farm-{kind}")
        naive_plan = plan(spec_naive, 0)
        farm_plan = plan(spec_farm, piece_cost)
        kinds = sorted({j["kind"] for j in farm_plan["jobs"]})
        for rep in range(reps):
            fresh(os.path.join(work, f"out-naive-{kind}"))
            t = run_jobs_directly(naive_plan["jobs"], 1)
            naive_t.append(t)
            log(f"[{kind} rep {rep + 1}] naive {t:.1f} s")
            fresh(os.path.join(work, f"out-farm-{kind}"))
            t = reelfarm_run(spec_farm, workers, ("--piece-cost", str(piece_cost)))
            farm_t.append(t)
            log(f"[{kind} rep {rep + 1}] farm {t:.1f} s")
            fresh(os.path.join(work, f"out-farm-{kind}"))
            t = run_jobs_directly(farm_plan["jobs"], workers)
            direct_t.append(t)
            log(f"[{kind} rep {rep + 1}] farm's plan run directly {t:.1f} s")
        rows.append({"source": kind, "naive": statistics.median(naive_t),
                     "farm": statistics.median(farm_t), "direct": statistics.median(direct_t),
                     "naive_all": naive_t, "farm_all": farm_t, "direct_all": direct_t,
                     "farm_jobs": len(farm_plan["jobs"]), "farm_kinds": kinds})
    return rows


class Cgroups:
    """CPU quota groups: cgroup v2 (cpu.max) or v1 (cpu.cfs_quota_us)."""

    def __init__(self):
        self.base = None
        for base, v2 in (("/sys/fs/cgroup", True), ("/sys/fs/cgroup/cpu", False)):
            if v2 and not os.path.exists(os.path.join(base, "cgroup.controllers")):
                continue
            if not v2 and not os.path.exists(os.path.join(base, "cpu.cfs_quota_us")):
                continue
            try:
                path = os.path.join(base, f"reelfarm-bench-{os.getpid()}")
                os.makedirs(path)
                self.base, self.v2 = path, v2
                if v2:
                    with open(os.path.join(base, "cgroup.subtree_control"), "w") as f:
                        f.write("+cpu")
                return
            except OSError as e:
                self.why = f"{base}: {e}"
        self.why = getattr(self, "why", "no cgroup cpu controller mounted")

    def make(self, name, cores):
        path = os.path.join(self.base, name)
        os.makedirs(path, exist_ok=True)
        period = 100000
        quota = int(period * cores)
        if self.v2:
            with open(os.path.join(path, "cpu.max"), "w") as f:
                f.write(f"{quota} {period}")
        else:
            with open(os.path.join(path, "cpu.cfs_period_us"), "w") as f:
                f.write(str(period))
            with open(os.path.join(path, "cpu.cfs_quota_us"), "w") as f:
                f.write(str(quota))
        return path

    def cleanup(self):
        if not self.base:
            return
        for name in os.listdir(self.base):
            p = os.path.join(self.base, name)
            if os.path.isdir(p):
                try:
                    os.rmdir(p)
                except OSError:
                    pass
        try:
            os.rmdir(self.base)
        except OSError:
            pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for_port(port, timeout_s=10):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def start_redis_and_coordinator(state, procs, coordinator_args=()):
    """A private redis-server and a coordinator on free loopback ports, logs in
    `state`, appended to `procs` as they start (stop_processes ends them);
    returns the workers' ZeroMQ endpoint and the API's URL."""
    rp, zp, hp = free_port(), free_port(), free_port()
    procs.append(subprocess.Popen(["redis-server", "--port", str(rp), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", state],
                                  stdout=subprocess.DEVNULL))
    wait_for_port(rp)  # the coordinator refuses to start without its Redis
    procs.append(subprocess.Popen(
        [os.path.join(BIN, "reelfarm-coordinator"), "--redis", f"redis://127.0.0.1:{rp}",
         "--bind", f"tcp://127.0.0.1:{zp}", "--http", f"127.0.0.1:{hp}", "--metrics", "",
         *coordinator_args],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(state, "coordinator.log"), "w")))
    return f"tcp://127.0.0.1:{zp}", f"http://127.0.0.1:{hp}"


def wait_for_workers(url, n_workers, state, timeout_s=60):
    """Until the coordinator at `url` lists `n_workers` workers; raises with the
    tails of the logs in `state` when they do not come."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        res = subprocess.run([REELFARM, "--coordinator", url, "workers", "--json"],
                             capture_output=True, text=True)
        if res.returncode == 0 and len(json.loads(res.stdout).get("workers", [])) == n_workers:
            return
        time.sleep(0.1)
    tails = []
    for name in sorted(os.listdir(state)):
        if name.endswith(".log"):
            with open(os.path.join(state, name), errors="replace") as f:
                tails.append(f"--- {name}\n" + "".join(f.readlines()[-5:]))
    raise RuntimeError("cluster workers did not announce themselves:\n" + "\n".join(tails))


def stop_processes(procs):
    for p in reversed(procs):
        p.terminate()
    for p in reversed(procs):
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def cluster_run(work, spec, n_workers, cores_each, groups, min_chunk_s, piece_cost, tag):
    """A farm of n_workers, each in its own CPU-quota cgroup; returns the wall
    time from submit to the end of the delivery."""
    state = tempfile.mkdtemp(prefix=f"cluster-{tag}-", dir=work)
    procs = []
    try:
        zmq, url = start_redis_and_coordinator(
            state, procs,
            ["--min-chunk-s", str(min_chunk_s), "--piece-cost", str(piece_cost),
             # The default limits assume a worker of at least a core or two.
             "--job-timeout-per-media-s", str(round(20 * max(1.0, 2.0 / cores_each)))])
        for i in range(n_workers):
            cg = groups.make(f"{tag}-w{i}", cores_each)
            procs_file = os.path.join(cg, "cgroup.procs")
            argv = ["sh", "-c", f'echo $$ > "{procs_file}" && exec "$0" "$@"',
                    os.path.join(BIN, "reelfarm-worker"), "--coordinator", zmq,
                    "--name", f"{tag}-w{i}", "--slots", "1", "--metrics", "",
                    "--encoders", "libx264,libx265,aac,mjpeg,prores_ks,pcm_s24le,dnxhd,mov_text"]
            procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                          stderr=open(os.path.join(state, f"w{i}.log"), "w")))
        wait_for_workers(url, n_workers, state)
        start = time.monotonic()
        res = subprocess.run([REELFARM, "--coordinator", url, "submit", spec],
                             capture_output=True, text=True, check=True)
        delivery = res.stdout.strip().splitlines()[-1]
        res = subprocess.run([REELFARM, "--coordinator", url, "watch", delivery],
                             capture_output=True, text=True)
        wall = time.monotonic() - start
        if res.returncode != 0:
            raise RuntimeError(f"cluster delivery failed: {res.stdout[-1500:]} {res.stderr[-1500:]}")
        return wall
    finally:
        stop_processes(procs)
        shutil.rmtree(state, ignore_errors=True)


def with_retry(run_once):
    """A cluster run again once when its farm did not come up (a free port
    taken between choosing it and binding it)."""
    try:
        return run_once()
    except RuntimeError as e:
        if "did not announce" not in str(e):
            raise
        log(f"[cluster] the farm did not come up, once more: {str(e)[:1500]}")
        return run_once()


def cluster(work, source, sizes, min_chunk_s, piece_cost):
    groups = Cgroups()
    if not groups.base:
        return {"error": f"this machine does not allow CPU cgroups ({groups.why}); "
                         "the virtual cluster was not measured"}
    rows = []
    try:
        expected = frames_of(source)
        for n in sizes:
            cores = 2.0 / n
            out_one, out_n = f"out-cluster-1x{n}", f"out-cluster-{n}x{n}"
            spec_one = write_spec(work, f"cluster-one-{n}", source, out_one)
            spec_n = write_spec(work, f"cluster-many-{n}", source, out_n)
            fresh(os.path.join(work, out_one))
            fresh(os.path.join(work, out_n))
            t_one = with_retry(lambda: cluster_run(work, spec_one, 1, cores, groups, min_chunk_s,
                                                   piece_cost, f"one{n}"))
            log(f"[cluster] 1 worker at {cores:.2f} core: {t_one:.1f} s")
            t_n = with_retry(lambda: cluster_run(work, spec_n, n, cores, groups, min_chunk_s,
                                                 piece_cost, f"many{n}"))
            log(f"[cluster] {n} workers at {cores:.2f} core each: {t_n:.1f} s")
            exact = True
            for name in ("master.mov", "web.mp4", "vertical.mp4", "square.mp4",
                         "web-subtitled.mp4"):
                got = frames_of(os.path.join(work, out_n, name))
                if got != expected:
                    exact = False
                    log(f"[cluster] {name}: {got} frames, source has {expected}")
            rows.append({"n": n, "cores_each": cores, "one": t_one, "many": t_n,
                         "speedup": t_one / t_n, "frame_exact": exact})
    finally:
        groups.cleanup()
    return {"rows": rows, "cgroup": "v2 cpu.max" if groups.v2 else "v1 cpu.cfs_quota_us"}


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
    return (f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, "
            f"{ffmpeg.splitlines()[0] if ffmpeg else 'ffmpeg ?'}")


def report(args, compare_rows, startup, cluster_result):
    lines = [f"## Run of {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} on {machine()}", "",
             f"Standard spec (master-prores; web-h264 720; social-h264 9:16 at 1920; social-h264 "
             f"1:1 at 1080; web-h264 720 with burned subtitles) on a {args.seconds} s 1080p25 "
             f"source with noise; medians of {args.reps} interleaved repetitions; the farm is "
             f"`reelfarm run --workers {args.workers}`.", "",
             "| source | naive (s) | farm (s) | farm's plan run directly (s) | fan-out vs naive | "
             "farm overhead | farm's jobs |",
             "|---|---|---|---|---|---|---|"]
    for r in compare_rows:
        lines.append(f"| {r['source']} | {r['naive']:.1f} | {r['farm']:.1f} | {r['direct']:.1f} | "
                     f"{r['naive'] / r['farm']:.3f}x | {100 * (r['farm'] / r['direct'] - 1):+.1f} % | "
                     f"{r['farm_jobs']} ({', '.join(r['farm_kinds'])}) |")
    lines.append("")
    lines.append("All repetitions (s): " + "; ".join(
        f"{r['source']}: naive {[round(x, 1) for x in r['naive_all']]}, farm "
        f"{[round(x, 1) for x in r['farm_all']]}, direct {[round(x, 1) for x in r['direct_all']]}"
        for r in compare_rows))
    lines.append("")
    if startup is not None:
        lines.append(f"Fixed cost of a farm run (one poster frame, median): `reelfarm run` "
                     f"{startup['farm']:.2f} s, its FFmpeg directly {startup['direct']:.2f} s: "
                     f"{startup['farm'] - startup['direct']:.2f} s of start-up, verification and "
                     f"shutdown that every run pays once, whatever its length.")
        lines.append("")
    if cluster_result is not None:
        if "error" in cluster_result:
            lines.append(f"Virtual cluster: {cluster_result['error']}")
        else:
            lines += [f"Virtual cluster ({cluster_result['cgroup']}), {args.cluster_seconds} s "
                      f"source, pieces of cost {args.cluster_piece_cost}, chunks of at least "
                      f"{args.cluster_min_chunk_s} s:", "",
                      "| N | CPU per worker | 1 worker (s) | N workers (s) | speed-up | "
                      "frame-exact |", "|---|---|---|---|---|---|"]
            for r in cluster_result["rows"]:
                lines.append(f"| {r['n']} | {r['cores_each']:.2f} core | {r['one']:.1f} | "
                             f"{r['many']:.1f} | {r['speedup']:.2f}x | "
                             f"{'yes' if r['frame_exact'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60, help="source length (default 60)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument("--workers", type=int, default=2, help="reelfarm run --workers (default 2)")
    ap.add_argument("--sources", default="h264,prores", help="h264,prores")
    ap.add_argument("--cluster-sizes", default="1,2,4,8")
    ap.add_argument("--cluster-seconds", type=int, default=30)
    ap.add_argument("--gop", type=int, default=50,
                    help="key frame interval of the H.264 source in frames (default 50: 2 s)")
    ap.add_argument("--cluster-min-chunk-s", type=float, default=1)
    ap.add_argument("--piece-cost", type=float, default=4, help="farm's --piece-cost (default 4)")
    ap.add_argument("--cluster-piece-cost", type=float, default=2)
    ap.add_argument("--skip-compare", action="store_true")
    ap.add_argument("--skip-cluster", action="store_true")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "reelfarm-bench"))
    ap.add_argument("--report", default=os.path.join(ROOT, "bench", "last-run.md"))
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)

    compare_rows, startup = [], None
    if not args.skip_compare:
        sources = make_sources(args.work, args.seconds, args.gop)
        wanted = {k: v for k, v in sources.items() if k in args.sources.split(",")}
        compare_rows = compare(args.work, wanted, args.reps, args.workers, args.piece_cost)
        startup = startup_cost(args.work, sources["h264"], args.workers, max(args.reps, 3))
        log(f"[startup] poster frame: farm {startup['farm']:.2f} s, directly {startup['direct']:.2f} s")
    cluster_result = None
    if not args.skip_cluster:
        src = make_sources(args.work, args.cluster_seconds, args.gop)["h264"]
        sizes = [int(x) for x in args.cluster_sizes.split(",")]
        cluster_result = cluster(args.work, src, sizes, args.cluster_min_chunk_s,
                                 args.cluster_piece_cost)
    text = report(args, compare_rows, startup, cluster_result)
    with open(args.report, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
