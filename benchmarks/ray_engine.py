"""`evaluate --engine ray` against `evaluate --workers N` on the same clips and cores, in one run.

    python benchmarks/ray_engine.py [LIST] [--cpus 2] [--limit N] [--backend B] [--checkpoint C]

LIST: any list evaluate reads (default ../shared/media/dev/MANIFEST.tsv). Both engines start
from an empty cache, so both decode, find faces and cut crops. The local engine runs with
`--cpus` worker processes, Ray on a local cluster of `--cpus` CPUs, started before the clock
(a cluster is up before its users come; its start-up is reported apart). Prints clips per
second of each and their ratio, then the per-stage costs from Ray's records (prepare_s: decode,
faces, crops, on one core; judge_s: the backend, in a scorer), which stage bounds the
throughput, and the CPUs and scorers that would evaluate FakeAVCeleb (21,544 videos) in one hour
at these costs (scaled by clip length: FakeAVCeleb's clips average about 7 s).
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from speechforensics import evaluate
from speechforensics.distributed import RayEngine
from speechforensics.lists import read_list

DEV = Path(__file__).resolve().parents[1].parent / "shared/media/dev"
FAKEAVCELEB = 21544  # videos
FAKEAVCELEB_SECONDS = 7.0  # mean clip length, roughly


def timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("list", nargs="?", type=Path, default=DEV / "MANIFEST.tsv")
    parser.add_argument("--cpus", type=int, default=2, help="local workers = Ray's CPUs")
    parser.add_argument("--limit", type=int, help="the first N clips only")
    parser.add_argument("--backend")
    parser.add_argument("--checkpoint")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    items = read_list(args.list)[: args.limit]
    config = evaluate.EvalConfig(backend=args.backend, checkpoint=args.checkpoint)
    with tempfile.TemporaryDirectory(prefix="ray_engine_") as folder:
        work = Path(folder)
        started = time.perf_counter()
        engine = RayEngine(num_cpus=args.cpus)
        engine.connect()
        startup = time.perf_counter() - started
        local = timed(lambda: evaluate.evaluate(items, work / "local", config, workers=args.cpus))
        ray = timed(lambda: evaluate.evaluate(items, work / "ray", config, engine=engine))
        same = (work / "local/scores.csv").read_bytes() == (work / "ray/scores.csv").read_bytes()
        records = [r for r in evaluate.read_results(work / "ray/results.jsonl") if not r["error"]]
        prepare = statistics.mean(r["prepare_s"] for r in records)
        judge = statistics.mean(r["judge_s"] for r in records)
        seconds = statistics.mean(r["duration_s"] for r in records)
        out = {
            "clips": len(items), "cpus": args.cpus, "backend": records[0]["backend"],
            "local_clips_per_s": len(items) / local, "ray_clips_per_s": len(items) / ray,
            "ray_over_local": local / ray, "ray_startup_s": startup, "scores_identical": same,
            "prepare_s_per_clip": prepare, "judge_s_per_clip": judge, "clip_seconds": seconds,
        }  # fmt: skip
    print(report(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


def report(m: dict) -> str:
    need = FAKEAVCELEB / 3600  # clips per second for one hour
    scale = FAKEAVCELEB_SECONDS / m["clip_seconds"]
    cpus, scorers = need * m["prepare_s_per_clip"] * scale, need * m["judge_s_per_clip"] * scale
    per_cpu = m["prepare_s_per_clip"] / m["cpus"]
    bound = "prepare (CPU)" if per_cpu > m["judge_s_per_clip"] else "judge (scorer)"
    overhead = 100 * (1 - m["ray_over_local"])
    head = f"{m['clips']} clips ({m['clip_seconds']:.1f} s on average), {m['backend']}"
    ratio = f"ray / local throughput: {m['ray_over_local']:.3f} (overhead {overhead:.1f} %)"
    startup = f"cluster start-up {m['ray_startup_s']:.1f} s, not in the times"
    prepare = f"prepare {m['prepare_s_per_clip']:.3f} s (one core)"
    judge = f"judge {m['judge_s_per_clip']:.3f} s (scorer)"
    hour = f"FakeAVCeleb ({FAKEAVCELEB} videos, ~{FAKEAVCELEB_SECONDS:.0f} s each) in one hour"
    return "\n".join(
        [
            f"{head}, {m['cpus']} CPUs",
            "| engine | clips/s |",
            "|---|---|",
            f"| local, --workers {m['cpus']} | {m['local_clips_per_s']:.3f} |",
            f"| --engine ray | {m['ray_clips_per_s']:.3f} |",
            f"{ratio}; {startup}; scores.csv identical: {m['scores_identical']}",
            f"per clip: {prepare}, {judge}; bottleneck: {bound}",
            f"{hour}: {need:.1f} clips/s, ~{cpus:.0f} preparing cores, {scorers:.2f} scorers busy",
        ]
    )


if __name__ == "__main__":
    main()
