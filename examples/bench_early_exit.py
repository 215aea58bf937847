"""Early exit against its baseline: the same Transformer classifier, with and without exits.

Runs the ``early_exit`` workload of ``greentrack bench`` (and its baseline) as tracked runs of
project ``bench``, then says how much inference energy and time early exit saved and what it
cost in accuracy.

    python examples/bench_early_exit.py                 # the quick suite (a few minutes)
    python examples/bench_early_exit.py --suite tiny    # one training step (seconds)
"""

from __future__ import annotations

import argparse

from greentrack.workloads.bench import run_bench
from greentrack.workloads.output import format_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="quick", choices=["tiny", "quick", "full"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()

    results = {r.workload: r for r in run_bench(args.suite, ["early_exit"], args.device)}
    print(format_table(list(results.values())))
    base, ee = results["transformer_shapes"], results["early_exit"]
    print()
    print(
        f"early exit: {base.inference_energy_j_per_1k / ee.inference_energy_j_per_1k:.2f}x less "
        f"inference energy ({ee.energy_method}), "
        f"{base.inference_time_s_per_1k / ee.inference_time_s_per_1k:.2f}x less time, "
        f"accuracy {ee.accuracy:.3f} vs {base.accuracy:.3f} "
        f"(mean exit layer {ee.notes['mean_exit_layer']} of {ee.notes['n_layer']})"
    )


if __name__ == "__main__":
    main()
