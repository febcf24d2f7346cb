#!/usr/bin/env python3
"""Peak memory of one planned FFmpeg job per preset x resolution x thread budget.

Runs FFmpeg exactly as the planner shapes a single-deliverable job
(planning/planner.cc SingleJob, preset arguments from common/presets.cc), with a thread budget T applied:

  ffmpeg -filter_threads T -filter_complex_threads T -hide_banner -nostdin -y
    -loglevel warning -nostats -progress pipe:1 -noautorotate
    -protocol_whitelist file -f mov [-ss S] -threads T -i SRC
    -filter_complex "[0:v:0]scale=W:H,setsar=1[v]" -map [v] [-map 0:a:0]
    -map_metadata -1 -map_chapters -1 <video args> [-fps_mode cfr -r 25/1]
    -frames:v N <audio args> <container args> -f MUXER -threads T OUT

(libx265: "-x265-params log-level=error:pools=T", and the output's -threads
capped at 16: FFmpeg 5.1 passes it to x265 as --frame-threads, and x265
refuses more than 16, so the exact shape fails to open the encoder at
T > 16), one at a time, under
`nice -n 19`, with MALLOC_ARENA_MAX=4 as the worker sets it. Per run:

  rss   peak resident set: ru_maxrss of the child (os.wait4), KiB
  as    peak address space: VmPeak of /proc/PID/status polled every 20 ms,
        the last value read before exit (VmPeak only grows)
  thr   the most threads seen (Threads: in the same polls)
  wall  wall seconds; cpu: user + system seconds of the child

Sources (testsrc2 + temporal noise, H.264 CRF 16, stereo AAC, 25 fps) are
made once per resolution in --workdir and shared; each run decodes a source
of the output's own size (decode frame = encode frame).

Stdlib only. Results go to a CSV (resumable: rows already there are not
run again unless --fresh); --report FILE rewrites the generated part of a
Markdown report (tables, fitted bounds) between its markers.
"""

import argparse
import csv
import datetime
import itertools
import math
import os
import platform
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

AAC = ["-c:a", "aac", "-b:a", "160k", "-ar", "48000", "-ac", "2"]
PCM = ["-c:a", "pcm_s24le", "-ar", "48000"]
H264 = ["-c:v", "libx264", "-profile:v", "high", "-preset", "medium"]

# name: (family, video args, audio args, container args, muxer, extension, still)
PRESETS = {
    "master-prores": ("prores", ["-c:v", "prores_ks", "-profile:v", "3", "-vendor", "apl0",
                                 "-pix_fmt", "yuv422p10le"], PCM, [], "mov", "mov", False),
    "master-dnxhr": ("dnxhd", ["-c:v", "dnxhd", "-profile:v", "dnxhr_hq", "-pix_fmt", "yuv422p"],
                     PCM, [], "mxf", "mxf", False),
    "web-h264": ("x264", H264 + ["-crf", "20", "-pix_fmt", "yuv420p"], AAC,
                 ["-movflags", "+faststart"], "mp4", "mp4", False),
    "social-h264": ("x264", H264 + ["-crf", "21", "-maxrate", "8M", "-bufsize", "16M",
                                    "-pix_fmt", "yuv420p"], AAC,
                    ["-movflags", "+faststart"], "mp4", "mp4", False),
    "web-hevc": ("x265", ["-c:v", "libx265", "-preset", "medium", "-crf", "24", "-tag:v", "hvc1",
                          "-pix_fmt", "yuv420p", "-x265-params", "log-level=error"], AAC,
                 ["-movflags", "+faststart"], "mp4", "mp4", False),
    "thumbnail-jpg": ("mjpeg", ["-frames:v", "1", "-c:v", "mjpeg", "-q:v", "2",
                                "-pix_fmt", "yuvj420p"], [], ["-update", "1"], "image2", "jpg",
                      True),
}
FAMILIES = ["x264", "x265", "prores", "dnxhd", "mjpeg"]
RESOLUTIONS = ["854x480", "1280x720", "1920x1080", "1080x1920", "3840x2160"]
THREADS = [1, 2, 4, 8, 16, 24, 32, 64]

# CPU seconds per megapixel-frame (decode + encode; AMD EPYC, 1080p25, T = 8),
# used only to order runs cheapest first.
COST = {"x264": 0.36, "x265": 1.0, "prores": 0.63, "dnxhd": 0.08, "mjpeg": 0.1}

X265_MAX_FRAME_THREADS = 16
SOURCE_SECONDS = 5  # 125 frames: the most any run encodes is 64 + 50
THUMB_SEEK = "0.500"  # planner: 10 % of the source's duration


def frames_for(family, threads):
    """Video frames to encode so the process reaches its steady-state memory.

    x264 medium: rc-lookahead 40 + sync lookahead + 3 B-frames + one frame
    per frame thread are buffered before the first packet: T + 50.
    x265 medium: rc-lookahead 20 + 4 B-frames + at most 6 frame threads,
    whatever the pool size: 45.
    Intra encoders (prores_ks, dnxhd) frame-thread in libavcodec, one frame
    per thread in flight, behind a decoder holding one frame per thread:
    T + 10. Stills: 1 (the decoder still fills its T frame threads).
    """
    return {"x264": threads + 50, "x265": 45, "mjpeg": 1}.get(family, threads + 10)


ALL_T = THREADS
# The default grid, in priority order (the cheapest, most telling runs
# first), as (presets, resolutions, threads) blocks; each block runs
# cheapest first and the whole stops at --budget-min. The full cartesian
# grid (--all) takes hours on 2 cores; see docs/memory.md for what the
# default leaves out.
DEFAULT_PLAN = [
    (["thumbnail-jpg"], RESOLUTIONS, ALL_T),
    (["master-dnxhr"], ["854x480", "1920x1080"], ALL_T),
    (["web-h264", "master-prores", "web-hevc"], ["854x480"], [1, 4, 16, 64]),
    (["web-h264", "master-prores"], ["1920x1080"], [1, 16, 64]),
    (["web-hevc"], ["1920x1080"], [1, 16]),
    (["master-dnxhr"], ["3840x2160"], [1, 16, 64]),
    (["web-h264"], ["3840x2160"], [1, 64]),
    (["master-prores"], ["3840x2160"], [1, 16]),
    (["web-hevc"], ["3840x2160"], [1]),
    (["web-h264", "social-h264"], ["1080x1920"], [4]),
    (["master-dnxhr"], ["1280x720", "1080x1920"], [4, 16]),
    (["web-h264", "master-prores", "web-hevc"], ["854x480"], [2, 8, 32]),
    (["web-hevc"], ["3840x2160"], [16]),
    (["master-prores"], ["3840x2160"], [64]),
    (["web-h264"], ["3840x2160"], [16]),
]
QUICK_PLAN = [(list(PRESETS), ["854x480"], [1, 4, 16])]


def mpx(res):
    w, h = map(int, res.split("x"))
    return w * h / 1e6


def build_argv(ffmpeg, preset, src, res, threads, out, frames):
    family, video, audio, container, muxer, _, still = PRESETS[preset]
    w, h = res.split("x")
    t = str(threads)
    argv = [ffmpeg, "-filter_threads", t, "-filter_complex_threads", t,
            "-hide_banner", "-nostdin", "-y", "-loglevel", "warning", "-nostats",
            "-progress", "pipe:1", "-noautorotate",
            "-protocol_whitelist", "file", "-f", "mov"]
    if still:
        argv += ["-ss", THUMB_SEEK]
    argv += ["-threads", t, "-i", src,
             "-filter_complex", "[0:v:0]scale=%s:%s,setsar=1[v]" % (w, h), "-map", "[v]"]
    if audio:
        argv += ["-map", "0:a:0"]
    argv += ["-map_metadata", "-1", "-map_chapters", "-1"]
    video = list(video)
    if family == "x265":
        k = video.index("-x265-params") + 1
        video[k] += ":pools=%d" % threads
    argv += video
    if not still:
        argv += ["-fps_mode", "cfr", "-r", "25/1", "-frames:v", str(frames)]
    if family == "x265":
        # FFmpeg 5.1's libx265 turns -threads into --frame-threads, which x265
        # refuses above 16 ("Cannot open libx265 encoder"): the pool takes T.
        t = str(min(threads, X265_MAX_FRAME_THREADS))
    argv += audio + container + ["-f", muxer, "-threads", t, out]
    return argv


def make_source(ffmpeg, workdir, res, seconds=SOURCE_SECONDS):
    path = os.path.join(workdir, "src-%s%s.mov" % (res, "" if seconds == SOURCE_SECONDS
                                                    else "-%ds" % seconds))
    if os.path.exists(path):
        return path
    tmp = path + ".part.mov"
    cmd = ["nice", "-n", "19", ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
           "-f", "lavfi", "-i", "testsrc2=size=%s:rate=25" % res,
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
           "-t", str(seconds), "-vf", "noise=alls=20:allf=t",
           "-c:v", "libx264", "-preset", "ultrafast", "-crf", "16", "-g", "50",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2", "-shortest", tmp]
    t0 = time.time()
    subprocess.run(cmd, check=True)
    os.rename(tmp, path)
    print("  made %s in %.0f s" % (os.path.basename(path), time.time() - t0), flush=True)
    return path


def read_status(pid):
    """(VmPeak KiB, VmHWM KiB, Threads) of a live process, None when gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            text = f.read()
    except OSError:
        return None
    peak = hwm = thr = None
    for line in text.splitlines():
        if line.startswith("VmPeak:"):
            peak = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
        elif line.startswith("Threads:"):
            thr = int(line.split()[1])
    return peak, hwm, thr


def run_one(argv, log_path, poll_s=0.02):
    env = dict(os.environ, MALLOC_ARENA_MAX="4")
    with open(log_path, "wb") as log:
        t0 = time.monotonic()
        # nice execs FFmpeg in place: the child's PID is FFmpeg's.
        proc = subprocess.Popen(["nice", "-n", "19"] + argv, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    vmpeak = hwm = thr = 0
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        st = read_status(proc.pid)
        if st:
            if st[0] is not None:  # a zombie has no VmPeak: keep the last one read
                vmpeak = st[0]
                hwm = max(hwm, st[1] or 0)
            thr = max(thr, st[2] or 0)
        time.sleep(poll_s)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return dict(rc=proc.returncode, rss_kib=ru.ru_maxrss, vmpeak_kib=vmpeak, hwm_kib=hwm,
                threads_max=thr, wall_s=wall, cpu_s=ru.ru_utime + ru.ru_stime)


FIELDS = ["preset", "family", "resolution", "mpx", "threads", "frames", "rss_mib", "as_mib",
          "hwm_mib", "threads_max", "wall_s", "cpu_s", "rc", "rss_kib", "vmpeak_kib"]


def load_rows(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def write_rows(path, rows):
    key = lambda r: (list(PRESETS).index(r["preset"]), RESOLUTIONS.index(r["resolution"])
                     if r["resolution"] in RESOLUTIONS else 99, int(r["threads"]))
    rows = sorted(rows, key=key)
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


# ---------------------------------------------------------------- fitting

def solve(m, v):
    """Gaussian elimination with partial pivoting; None if singular."""
    n = len(v)
    a = [list(m[i]) + [v[i]] for i in range(n)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(a[r][c]))
        if abs(a[p][c]) < 1e-12:
            return None
        a[c], a[p] = a[p], a[c]
        for r in range(n):
            if r != c:
                f = a[r][c] / a[c][c]
                for k in range(c, n + 1):
                    a[r][k] -= f * a[c][k]
    return [a[i][n] / a[i][i] for i in range(n)]


def basis(t, x):
    return [1.0, t, x, t * x]


def least_squares(points):
    """Non-negative least squares of y ~ a + b T + c Mpx + d T Mpx, by trying
    every subset of the four terms and keeping the best one whose
    coefficients are all >= 0."""
    best = None
    for k in range(1, 5):
        for subset in itertools.combinations(range(4), k):
            xs = [[basis(t, x)[j] for j in subset] for t, x, _ in points]
            ys = [y for _, _, y in points]
            ata = [[sum(r[i] * r[j] for r in xs) for j in range(k)] for i in range(k)]
            aty = [sum(r[i] * y for r, y in zip(xs, ys)) for i in range(k)]
            sol = solve(ata, aty)
            if sol is None or min(sol) < 0:
                continue
            coef = [0.0] * 4
            for j, s in zip(subset, sol):
                coef[j] = s
            sse = sum((y - sum(c * b for c, b in zip(coef, basis(t, x)))) ** 2
                      for t, x, y in points)
            if best is None or sse < best[0]:
                best = (sse, coef)
    return best[1]


def upper_bound(points, margin=1.15):
    """Coefficients >= 0 with a + b T + c Mpx + d T Mpx >= margin * y at every
    point, minimising the mean of bound/y (a 4-variable LP, solved by
    enumerating its vertices). Returns None if infeasible (never: a large
    enough `a` always covers)."""
    cons = [(basis(t, x), margin * y) for t, x, y in points]
    cons += [([1.0 if j == i else 0.0 for j in range(4)], 0.0) for i in range(4)]
    obj = [sum(basis(t, x)[j] / y for t, x, y in points) for j in range(4)]
    best = None
    for quad in itertools.combinations(range(len(cons)), 4):
        sol = solve([cons[i][0] for i in quad], [cons[i][1] for i in quad])
        if sol is None:
            continue
        if any(sum(r[j] * sol[j] for j in range(4)) < rhs - 1e-6 for r, rhs in cons):
            continue
        val = sum(o * s for o, s in zip(obj, sol))
        if best is None or val < best[0]:
            best = (val, sol)
    return None if best is None else [max(0.0, s) for s in best[1]]


def round_up(coef):
    """Readable coefficients, each rounded up (so the bound only grows)."""
    a, b, c, d = coef
    up = lambda v, step: math.ceil(v / step - 1e-9) * step
    return [up(a, 1), up(b, 0.1), up(c, 1), up(d, 0.1)]


def formula(name, coef):
    a, b, c, d = coef
    fmt = lambda v: ("%g" % round(v, 1))
    terms = [fmt(a)]
    if b:
        terms.append("%s·T" % fmt(b))
    if c:
        terms.append("%s·Mpx" % fmt(c))
    if d:
        terms.append("%s·T·Mpx" % fmt(d))
    return "%s(T, Mpx) = %s" % (name, " + ".join(terms))


def evaluate(coef, t, x):
    return sum(c * b for c, b in zip(coef, basis(t, x)))


def fits(rows, margin=1.15):
    out = {}
    for fam in FAMILIES:
        pts = [r for r in rows if r["family"] == fam and r["rc"] == "0"]
        if len(pts) < 2:
            continue
        res = {}
        for metric, col in (("AS", "as_mib"), ("RSS", "rss_mib")):
            p = [(int(r["threads"]), float(r["mpx"]), float(r[col])) for r in pts]
            ls = least_squares(p)
            ub = upper_bound(p, margin)
            ub = round_up(ub)
            ratios = [evaluate(ub, t, x) / y for t, x, y in p]
            err = [abs(evaluate(ls, t, x) - y) / y for t, x, y in p]
            res[metric] = dict(ls=ls, ub=ub, min_ratio=min(ratios),
                               t_range=(min(t for t, _, _ in p), max(t for t, _, _ in p)),
                               mpx_range=(min(x for _, x, _ in p), max(x for _, x, _ in p)),
                               points=[(t, x) for t, x, _ in p],
                               median_ratio=sorted(ratios)[len(ratios) // 2],
                               max_ls_err=max(err), n=len(p))
        out[fam] = res
    return out


# ---------------------------------------------------------------- report

BEGIN = "<!-- BEGIN measure.py output: regenerate with --report, do not edit by hand -->"
END = "<!-- END measure.py output -->"


def machine_info(ffmpeg):
    def sh(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.rstrip()
        except OSError:
            return "?"
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return dict(nproc=sh(["nproc"]), free=sh(["free", "-g"]), cpu=cpu,
                ffmpeg=" ".join(sh([ffmpeg, "-version"]).split()[:3]) if shutil.which(ffmpeg) else "?",
                kernel=platform.release(), date=datetime.date.today().isoformat())


def render(rows, info, argv_example, with_fits=True):
    L = []
    L.append("Machine: `nproc` = %s (%s), Linux %s; %s; measured %s." %
             (info["nproc"], info["cpu"], info["kernel"], info["ffmpeg"], info["date"]))
    L.append("")
    L.append("```\n$ free -g\n%s\n```" % info["free"])
    L.append("")
    L.append("One run's argv (web-h264, 1920x1080, T = 8):")
    L.append("")
    L.append("```\n%s\n```" % " ".join(a if " " not in a and "[" not in a else '"%s"' % a
                                      for a in argv_example))
    L.append("")
    fit = fits(rows) if with_fits else {}
    if not with_fits:
        L.append("(Bounds and fits: computed when the run ends, or with --report-only.)")
        L.append("")
    L.append("### Conservative bounds (every measured point x 1.15 or more)")
    L.append("")
    L.append("T: the job's thread budget; Mpx: megapixels of the largest frame (source or "
             "output), e.g. 2.07 for 1920x1080, 8.29 for 3840x2160. Coefficients are >= 0 and "
             "rounded up; the bound is the tightest such plane over the measured grid "
             "(minimum mean bound/measured), so it extrapolates linearly, not safely, past "
             "the grid.")
    L.append("")
    L.append("| family | limit (MiB) | tightest point: bound/measured | median bound/measured "
             "| points | measured T | measured Mpx |")
    L.append("|---|---|---|---|---|---|---|")
    for fam, res in fit.items():
        for metric in ("AS", "RSS"):
            r = res[metric]
            L.append("| %s | `%s` | %.2f | %.2f | %d | %d-%d | %.2f-%.2f |" %
                     (fam, formula(metric + "_MiB", r["ub"]), r["min_ratio"], r["median_ratio"],
                      r["n"], r["t_range"][0], r["t_range"][1], r["mpx_range"][0],
                      r["mpx_range"][1]))
    L.append("")
    if fit:
        pts = [(t, res) for res in ("1920x1080", "3840x2160") for t in (1, 4, 16, 64)]
        L.append("The bounds at a few points, AS / RSS in MiB (*: extrapolated, no measured "
                 "point of that family has both T and Mpx at least as large):")
        L.append("")
        L.append("| family | " + " | ".join("T=%d %s" % (t, r.split("x")[1] + "p")
                                           for t, r in pts) + " |")
        L.append("|---|" + "---:|" * len(pts))
        for fam, res in fit.items():
            cells = []
            for t, r in pts:
                x = mpx(r)
                a, b = res["AS"], res["RSS"]
                # extrapolated unless some measured point has T and Mpx at least as large
                out = not any(pt >= t and px >= x - 0.01 for pt, px in a["points"])
                cells.append("%.0f / %.0f%s" % (evaluate(a["ub"], t, x), evaluate(b["ub"], t, x),
                                                "*" if out else ""))
            L.append("| %s | %s |" % (fam, " | ".join(cells)))
        L.append("")
    L.append("### Least-squares fits (typical use, not limits)")
    L.append("")
    L.append("| family | fit (MiB) | worst relative error |")
    L.append("|---|---|---|")
    for fam, res in fit.items():
        for metric in ("AS", "RSS"):
            r = res[metric]
            L.append("| %s | `%s` | %.0f%% |" %
                     (fam, formula(metric + "_MiB", r["ls"]), 100 * r["max_ls_err"]))
    L.append("")
    L.append("### Measurements")
    L.append("")
    L.append("RSS: peak resident set (ru_maxrss); AS: peak address space (VmPeak); threads: "
             "most threads seen; frames: video frames encoded; wall: seconds on the shared, "
             "niced machine (timing is indicative only).")
    L.append("")
    for preset in PRESETS:
        pr = [r for r in rows if r["preset"] == preset]
        if not pr:
            continue
        L.append("#### %s (%s)" % (preset, PRESETS[preset][0]))
        L.append("")
        L.append("| resolution | T | RSS MiB | AS MiB | threads | frames | wall s | cpu s |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in pr:
            if r["rc"] != "0":
                L.append("| %s | %s | failed (rc %s) | | | | | |" %
                         (r["resolution"], r["threads"], r["rc"]))
                continue
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" %
                     (r["resolution"], r["threads"], r["rss_mib"], r["as_mib"], r["threads_max"],
                      r["frames"], r["wall_s"], r["cpu_s"]))
        L.append("")
    return "\n".join(L)


def write_report(path, body):
    text = ""
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    block = BEGIN + "\n\n" + body + "\n\n" + END
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = (text.rstrip() + "\n\n" if text else "# FFmpeg memory per thread budget\n\n") + \
            block + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="small grid: every preset at 854x480, T = 1, 4, 16 (a few minutes)")
    ap.add_argument("--out", default=os.path.join(HERE, "results.csv"),
                    help="CSV of results (default bench/memory/results.csv); combinations "
                    "already in it are not run again")
    ap.add_argument("--report", help="Markdown file whose generated part is rewritten "
                    "after every run (e.g. docs/memory.md)")
    ap.add_argument("--presets", help="comma list; with --res/--threads replaces the "
                    "default grid by their cartesian product")
    ap.add_argument("--res", help="comma list of WxH (default with --presets: %s)" %
                    ",".join(RESOLUTIONS))
    ap.add_argument("--threads", help="comma list (default with --presets: %s)" %
                    ",".join(map(str, THREADS)))
    ap.add_argument("--all", action="store_true",
                    help="the full grid, every preset x resolution x T (hours on 2 cores)")
    ap.add_argument("--fresh", action="store_true", help="re-run combinations already in --out")
    ap.add_argument("--budget-min", type=float, default=45,
                    help="running budget: a run whose estimated time no longer fits is "
                    "skipped and listed (default 45)")
    ap.add_argument("--workdir", default="/tmp/reelfarm-memory", help="sources, outputs, logs")
    ap.add_argument("--ffmpeg", default="ffmpeg")
    ap.add_argument("--frames-factor", type=float, default=1.0,
                    help="encode this many times the usual frames (a steady-state check: "
                    "the peaks should not move); needs a long enough source, see --seconds")
    ap.add_argument("--seconds", type=int, default=SOURCE_SECONDS,
                    help="source length made in --workdir (default %d)" % SOURCE_SECONDS)
    ap.add_argument("--dry-run", action="store_true", help="print the plan and argv, run nothing")
    ap.add_argument("--report-only", action="store_true", help="just rewrite --report from --out")
    args = ap.parse_args()

    if args.presets or args.res or args.threads:
        blocks = [(args.presets.split(",") if args.presets else list(PRESETS),
                   args.res.split(",") if args.res else RESOLUTIONS,
                   [int(t) for t in args.threads.split(",")] if args.threads else THREADS)]
    elif args.all:
        blocks = [(list(PRESETS), RESOLUTIONS, THREADS)]
    elif args.quick:
        blocks = QUICK_PLAN
    else:
        blocks = DEFAULT_PLAN
    for ps, _, _ in blocks:
        for p in ps:
            if p not in PRESETS:
                sys.exit("unknown preset %s (know %s)" % (p, ", ".join(PRESETS)))

    rows = load_rows(args.out)
    info = machine_info(args.ffmpeg)
    example = build_argv(args.ffmpeg, "web-h264", "SRC.mov", "1920x1080", 8, "OUT.mp4",
                         frames_for("x264", 8))

    def report(with_fits=True):
        if args.report:
            write_report(args.report, render(rows, info, example, with_fits))

    if args.report_only:
        report()
        return

    done = {(r["preset"], r["resolution"], r["threads"]) for r in rows if r["rc"] == "0"}
    plan, seen = [], set()
    for ps, rs, ts in blocks:
        block = []
        for p, res, t in itertools.product(ps, rs, ts):
            if (p, res, t) in seen or (not args.fresh and (p, res, str(t)) in done):
                continue
            seen.add((p, res, t))
            fam = PRESETS[p][0]
            frames = frames_for(fam, t)
            if fam != "mjpeg":
                frames = int(round(frames * args.frames_factor))
            # stills: the decoder fills its T frame threads before the first frame
            work = (frames if fam != "mjpeg" else t + 1) * mpx(res) * COST[fam]
            block.append((work, p, res, t, frames))
        plan += sorted(block)
    print("%d runs to do; est. work %.0f Mpx-frames" % (len(plan), sum(w for w, *_ in plan)),
          flush=True)
    if args.dry_run:
        for w, p, res, t, frames in plan:
            print(" ".join(build_argv(args.ffmpeg, p, "SRC", res, t, "OUT", frames)))
        return

    os.makedirs(args.workdir, exist_ok=True)
    out_dir = os.path.join(args.workdir, "out")
    os.makedirs(out_dir, exist_ok=True)
    start = time.time()
    spent_work, spent_wall = 0.0, 0.0
    left_out = []
    for i, (w, p, res, t, frames) in enumerate(plan):
        # wall seconds per unit of work, as observed so far on this machine
        rate = spent_wall / spent_work if spent_work > 20 else 2.0
        remaining = args.budget_min * 60 - (time.time() - start)
        if w * rate > remaining:
            left_out.append("%s %s T=%d (est. %.0f s)" % (p, res, t, w * rate))
            continue
        src = make_source(args.ffmpeg, args.workdir, res, args.seconds)
        fam, _, _, _, _, ext, _ = PRESETS[p]
        out = os.path.join(out_dir, "out.%s" % ext)
        log = os.path.join(args.workdir, "log-%s-%s-%d.txt" % (p, res, t))
        r = run_one(build_argv(args.ffmpeg, p, src, res, t, out, frames), log)
        if os.path.exists(out):
            os.remove(out)
        spent_work += w
        spent_wall += r["wall_s"]
        row = dict(preset=p, family=fam, resolution=res, mpx="%.3f" % mpx(res), threads=str(t),
                   frames=str(frames), rss_mib="%.0f" % (r["rss_kib"] / 1024),
                   as_mib="%.0f" % (r["vmpeak_kib"] / 1024), hwm_mib="%.0f" % (r["hwm_kib"] / 1024),
                   threads_max=str(r["threads_max"]), wall_s="%.1f" % r["wall_s"],
                   cpu_s="%.1f" % r["cpu_s"], rc=str(r["rc"]), rss_kib=str(r["rss_kib"]),
                   vmpeak_kib=str(r["vmpeak_kib"]))
        rows = [x for x in rows if (x["preset"], x["resolution"], x["threads"]) !=
                (p, res, str(t))] + [row]
        write_rows(args.out, rows)
        report(with_fits=False)  # the bounds' LP takes seconds: only at the end
        print("[%3d/%d %5.0fs] %-13s %-9s T=%-2d rss %5s as %6s thr %3s wall %6s%s" %
              (i + 1, len(plan), time.time() - start, p, res, t, row["rss_mib"], row["as_mib"],
               row["threads_max"], row["wall_s"], "" if r["rc"] == 0 else
               "  FAILED rc %d, see %s" % (r["rc"], log)), flush=True)
    if left_out:
        print("not run, would not fit the %.0f min budget:\n  %s" %
              (args.budget_min, "\n  ".join(left_out)))
    report()


if __name__ == "__main__":
    main()
