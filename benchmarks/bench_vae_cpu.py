"""The toy VAE on a CPU batch of one: direct (slow_conv3d) vs ``run_as_pair`` (two copies, the mkldnn path).

    MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=68719476736 \\
        .venv/bin/python benchmarks/bench_vae_cpu.py [--runs 7] [--threads 1] [--write]

Paired, interleaved rounds in one process (each round times both ways, in alternating order), after a warm-up;
per-way medians and the median of the per-round ratio pair / direct. Also the largest absolute difference of the
outputs. ``--write`` appends the table to benchmarks/RESULTS.md.
"""

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from cogfun.models.cpu_batching import run_as_pair
from cogfun.pipelines.components import load_pipeline


def timed(fn) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    vae = load_pipeline().vae.eval()
    x = torch.rand(1, 3, 17, 64, 96, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
        cases = {
            "encode": (lambda: vae.encode(x).latent_dist.mode(),
                       lambda: run_as_pair(lambda v: vae.encode(v).latent_dist.mode(), x)),
            "decode": (lambda: vae.decode(z).sample, lambda: run_as_pair(lambda v: vae.decode(v).sample, z)),
        }
        rows = []
        for name, (direct, pair) in cases.items():
            direct(), pair()  # warm-up
            times = {"direct": [], "pair": []}
            diff = 0.0
            for r in range(args.runs):
                order = ("direct", "pair") if r % 2 == 0 else ("pair", "direct")
                outs = {}
                for way in order:
                    seconds, outs[way] = timed(direct if way == "direct" else pair)
                    times[way].append(seconds)
                diff = max(diff, float((outs["direct"] - outs["pair"]).abs().max()))
            ratios = [p / d for p, d in zip(times["pair"], times["direct"])]
            rows.append((name, statistics.median(times["direct"]), statistics.median(times["pair"]),
                         statistics.median(ratios), diff))
    table = ["| call | direct, batch of one (s) | run_as_pair (s) | median ratio pair / direct | max abs diff |",
             "|---|---|---|---|---|"]
    table += [f"| {n} 1x3x17x64x96 | {d:.3f} | {p:.3f} | {r:.2f} | {e:.1e} |" for n, d, p, r, e in rows]
    text = "\n".join(table)
    print(text)
    if args.write:
        header = (f"\n## VAE on a CPU batch of one: direct vs run_as_pair\n\nMachine: {platform.machine()}, "
                  f"{torch.get_num_threads()} thread(s), torch {torch.__version__}; command: "
                  "`.venv/bin/python benchmarks/bench_vae_cpu.py --write`. The default model's VAE (8x spatial), "
                  f"{args.runs} paired interleaved rounds after a warm-up.\n\n")
        with (Path(__file__).parent / "RESULTS.md").open("a") as f:
            f.write(header + text + "\n")


if __name__ == "__main__":
    main()
