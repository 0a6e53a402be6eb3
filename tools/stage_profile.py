"""Per-stage profile of a finished run from Snakemake's `benchmark:` files.

    python tools/stage_profile.py RUN_DIR [--wall SECONDS]

prints a Markdown table (stage, jobs, mean and total wall seconds of the jobs) and,
given the run's wall time, the sum of job seconds against it (how well the cores were kept busy).
A stage is the first folder under RUN_DIR/benchmarks/ (`sft`, `generate`, `eval`, ...), with
`eval/prefetch` and `eval/reference` apart from the students' evaluations.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path


def stage_of(relative: Path) -> str:
    parts = relative.with_suffix("").parts
    if parts[0] == "eval" and parts[1] in {"prefetch", "reference"}:
        return f"eval/{parts[1]}"
    return parts[0]


def profile(run_dir: Path) -> dict[str, list[float]]:
    """stage -> wall seconds of each job (the last line of each benchmark file; Snakemake's
    cpu_time column is left out: it misses much of a job's CPU time)."""
    stages: dict[str, list[float]] = defaultdict(list)
    root = run_dir / "benchmarks"
    for path in sorted(root.rglob("*.tsv")):
        with path.open() as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if rows:
            stages[stage_of(path.relative_to(root))].append(float(rows[-1]["s"]))
    return dict(stages)


def table(stages: dict[str, list[float]], wall: float | None) -> str:
    lines = ["| stage | jobs | mean s | total s |", "| --- | ---: | ---: | ---: |"]
    for stage, jobs in sorted(stages.items(), key=lambda item: -sum(item[1])):
        lines.append(f"| {stage} | {len(jobs)} | {sum(jobs) / len(jobs):.1f} | {sum(jobs):.0f} |")
    total = sum(sum(jobs) for jobs in stages.values())
    count = sum(len(jobs) for jobs in stages.values())
    lines.append(f"| all | {count} | {total / max(count, 1):.1f} | {total:.0f} |")
    if wall:
        busy = total / wall
        lines += ["", f"job seconds {total:.0f} / wall {wall:.0f} s = {busy:.2f} jobs at a time"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="the run's working directory")
    parser.add_argument("--wall", type=float, help="the run's wall time in seconds")
    args = parser.parse_args()
    stages = profile(args.run_dir)
    if not stages:
        raise SystemExit(f"{args.run_dir}/benchmarks: no benchmark files")
    print(table(stages, args.wall))


if __name__ == "__main__":
    main()
