#!/usr/bin/env python3
"""bench/report.py RESULTS: the `make bench` table (issue 5) as Markdown.

RESULTS is bench/run.sh's file: one line per run, key=value words (the
obd-bench OBD-BENCH fields plus rep, wl, target and cpu_us_io).  Each row
gives the median over the rounds and the spread (half the min-max range, in
percent of the median), ours/tgt from the same run, each target's CPU time
per I/O, and the issue's target for that row, met or missed.
"""
import statistics
import sys


def load(path):
    runs, head = [], {}
    with open(path) as f:
        for line in f:
            kv = dict(w.split("=", 1) for w in line.split() if "=" in w)
            if "cmd" in kv:
                head = kv
            elif "wl" in kv:
                runs.append(kv)
    return head, runs


class Results:
    def __init__(self, runs):
        self.runs = runs

    def values(self, wl, target, key):
        out = []
        for r in self.runs:
            if r.get("wl") == wl and r.get("target") == target and "failed" not in r:
                try:
                    out.append(float(r[key]))
                except (KeyError, ValueError):
                    pass
        return out

    def med(self, wl, target, key):
        v = self.values(wl, target, key)
        return statistics.median(v) if v else None

    def spread(self, wl, target, key):
        v = self.values(wl, target, key)
        if len(v) < 2 or not statistics.median(v):
            return None
        return (max(v) - min(v)) / 2 / statistics.median(v) * 100

    def failed(self):
        return [r for r in self.runs if "failed" in r]


def fmt(v, key):
    if v is None:
        return "-"
    if key == "iops":
        return f"{v:,.0f}"
    if key.endswith("_us"):
        return f"{v:,.0f} µs" if v >= 100 else f"{v:.1f} µs"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def cell(res, wl, target, key):
    m = res.med(wl, target, key)
    if m is None:
        return "-"
    s = res.spread(wl, target, key)
    return fmt(m, key) + (f" ±{s:.0f}%" if s is not None else "")


def ratio(a, b):
    return a / b if a is not None and b else None


def rfmt(r):
    return "-" if r is None else f"{r:.2f}x"


def verdict(ok):
    return "-" if ok is None else ("**met**" if ok else "missed")


# (workload, label, metric, unit)
ROWS = [
    ("r4k-qd1", "4K rand read QD1", "iops", "IOPS"),
    ("r4k-qd1", "4K rand read QD1, p50 latency", "p50_us", ""),
    ("r4k-qd32", "4K rand read QD32", "iops", "IOPS"),
    ("w4k-qd32", "4K rand write QD32 (ours: writable upper)", "iops", "IOPS"),
    ("s128k-qd8", "128K seq read QD8", "mibs", "MiB/s"),
    ("s1m-qd1", "1M seq read QD1", "mibs", "MiB/s"),
    ("s1m-qd8", "1M seq read QD8", "mibs", "MiB/s"),
    ("r4k-qd32-3l", "4K rand read QD32, 3-layer stack", "iops", "IOPS"),
    ("s1m-qd8-3l", "1M seq read QD8, 3-layer stack", "mibs", "MiB/s"),
    ("r4k-qd32-lz4", "4K rand read QD32, lz4 ZFile stack", "iops", "IOPS"),
    ("s1m-qd8-lz4", "1M seq read QD8, lz4 ZFile stack", "mibs", "MiB/s"),
    ("r4k-qd8-s64", "4K rand read, 64 sessions x QD8", "iops", "IOPS"),
]


def target_of(res, wl, key, iperf):
    """(text, ok) for the issue-5 target of a row; ok None = not judged."""
    o = res.med(wl, "ours", key)
    t = res.med(wl, "tgt", key)
    r = ratio(o, t)
    if wl == "r4k-qd32":
        c = ratio(res.med(wl, "ours", "cpu_us_io"), res.med(wl, "tgt", "cpu_us_io"))
        ok = None if r is None or c is None else (r >= 3 and c <= 0.25)
        return f"≥3x tgt and ≤0.25x its CPU/IO (CPU {rfmt(c)})", ok
    if wl == "r4k-qd1" and key == "p50_us":
        return "≤0.7x tgt's p50", None if r is None else r <= 0.7
    if wl == "w4k-qd32":
        return "≥2x tgt", None if r is None else r >= 2
    if wl in ("s128k-qd8", "s1m-qd1", "s1m-qd8"):
        i = ratio(o, iperf)
        ok = None if r is None or i is None else (r >= 1.5 and i >= 0.6)
        return f"≥1.5x tgt and ≥0.6x iperf3 ({rfmt(i)})", ok
    if wl in ("r4k-qd32-3l", "s1m-qd8-3l"):
        base = wl[:-3]
        x = ratio(o, res.med(base, "ours", key))
        return f"≥0.9x single layer ({rfmt(x)})", None if x is None else x >= 0.9
    if wl == "r4k-qd32-lz4":
        x = ratio(o, res.med("r4k-qd32-3l", "ours", key))
        return f"≥0.7x uncompressed stack ({rfmt(x)})", None if x is None else x >= 0.7
    if wl == "s1m-qd8-lz4":
        x = ratio(o, res.med("s1m-qd8-3l", "ours", key))
        return f"vs uncompressed stack: {rfmt(x)}", None
    if wl == "r4k-qd8-s64":
        one = res.med("r4k-qd32", "ours", "iops")
        x = ratio(o, one)
        fair = [float(r["sess_p99_max_us"]) / float(r["sess_p99_med_us"])
                for r in res.runs if r.get("wl") == wl and r.get("target") == "ours"
                and "failed" not in r and float(r.get("sess_p99_med_us", 0)) > 0]
        f = max(fair) if fair else None
        ok = None if x is None or f is None else (x >= 1 and f <= 3)
        ftxt = "-" if f is None else f"{f:.2f}"
        return f"≥1x one session at QD32 ({rfmt(x)}), worst session p99 ≤3x median ({ftxt})", ok
    return "", None


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: report.py RESULTS")
    head, runs = load(sys.argv[1])
    res = Results(runs)
    iperf = res.med("iperf3", "loopback", "mibs")
    met = judged = 0
    out = []
    out.append(f"`make bench` {head.get('date', '')}: {head.get('size_mib', '?')} MiB image, "
               f"{head.get('dur', '?')} s per run, median of {head.get('reps', '?')} rounds "
               f"(± half the min-max range), {head.get('nproc', '?')} CPUs shared with the "
               "client.  CPU = the target process's utime+stime per I/O.")
    out.append("")
    out.append("| workload | ours | tgt 1.0.85 | ours/tgt | CPU µs/IO ours / tgt | target (issue 5) | |")
    out.append("|---|---:|---:|---:|---:|---|---|")
    for wl, label, key, unit in ROWS:
        if not res.values(wl, "ours", key) and not res.values(wl, "tgt", key):
            continue
        o, t = res.med(wl, "ours", key), res.med(wl, "tgt", key)
        co, ct = res.med(wl, "ours", "cpu_us_io"), res.med(wl, "tgt", "cpu_us_io")
        cpu = f"{fmt(co, 'x')} / {fmt(ct, 'x')}" if key != "p50_us" else ""
        txt, ok = target_of(res, wl, key, iperf)
        if ok is not None:
            judged += 1
            met += ok
        u = f" {unit}" if unit else ""
        out.append(f"| {label} | {cell(res, wl, 'ours', key)}{u} | {cell(res, wl, 'tgt', key)}"
                   f"{u if t is not None else ''} | {rfmt(ratio(o, t))} | {cpu} | {txt} | "
                   f"{verdict(ok)} |")
    if iperf is not None:
        out.append(f"| iperf3, one loopback TCP stream | {cell(res, 'iperf3', 'loopback', 'mibs')}"
                   " MiB/s | | | | ceiling for one connection | |")
    for r in runs:
        if r.get("wl") == "idle-sessions" and "failed" not in r:
            n = int(r["n"])
            per = (int(r["rss1_kib"]) - int(r["rss0_kib"])) / n
            if r["target"] == "ours":
                ok = per <= 256
                judged += 1
                met += ok
                v = verdict(ok)
            else:
                v = ""
            out.append(f"| RSS, {n} idle sessions ({r['target']}) | {int(r['rss0_kib']):,} → "
                       f"{int(r['rss1_kib']):,} KiB | | | | {per:.1f} KiB per session "
                       f"{'(≤256 KiB)' if r['target'] == 'ours' else ''} | {v} |")
        if r.get("wl") == "idle-devices" and "failed" not in r:
            n = int(r["n"])
            per = (int(r["rss1_kib"]) - int(r["rss0_kib"])) / n
            idx = int(r.get("index_bytes", 0)) / 1024
            ok = per <= 1024 + idx
            judged += 1
            met += ok
            out.append(f"| RSS, {n} idle devices (ours) | {int(r['rss0_kib']):,} → "
                       f"{int(r['rss1_kib']):,} KiB | | | | {per:.1f} KiB per device "
                       f"(≤1 MiB + {idx:.0f} KiB index) | {verdict(ok)} |")
    out.append("")
    out.append(f"Targets met: {met} of {judged}.")
    bad = res.failed()
    if bad:
        out.append("Failed runs: " + ", ".join(f"{r.get('wl')} on {r.get('target')}"
                                               for r in bad) + ".")
    print("\n".join(out))


if __name__ == "__main__":
    main()
