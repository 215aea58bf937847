"""Linear attention against softmax attention: time and energy per sequence vs its length.

Runs :func:`greentrack.workloads.sweep.run_attention_sweep` (the same as
``greentrack bench --only linear_attention_sweep``) and prints, per length, the time, energy
and FLOPs per sequence of a small encoder with softmax, random-feature (RFA / FAVOR+) and
bounded-memory (ABC) attention, and the length from which each linear attention wins.

    python benchmarks/bench_linear_attention.py
    python benchmarks/bench_linear_attention.py --lengths 128,512,2048,8192 --json out.json
"""

from __future__ import annotations

import argparse
import json

from greentrack.workloads.sweep import DEFAULT_LENGTHS, format_sweep, run_attention_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default=",".join(map(str, DEFAULT_LENGTHS)))
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--min-time-s", type=float, default=1.0)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--json", metavar="PATH", help="also write the points as JSON")
    args = parser.parse_args()

    sweep = run_attention_sweep(
        [int(n) for n in args.lengths.split(",")],
        width=args.width,
        layers=args.layers,
        min_time_s=args.min_time_s,
        device=args.device,
    )
    print(format_sweep(sweep))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(sweep.to_dict(), f, indent=2)


if __name__ == "__main__":
    main()
