"""Training throughput across the buckets of one token budget, and bucketed vs fixed-size at equal tokens/step.

For the toy-model recipe's budget (150 tokens, base sides 64 and 80, 17 frames max, five aspect ratios) this
times full training steps (text, random masks, VAE encodes, transformer forward + backward, AdamW) of the "toy"
transformer with the tiny VAE on random clips of each bucket: median seconds per step, tokens per second, and
the spread of step times across buckets. Then a bucketed run (batches cycling over the plan's buckets, batch
sizes chosen to keep tokens per step about constant) against a fixed-size run (every batch at the most common
64x64x17 bucket) at equal tokens per step: paired, interleaved rounds, median ratio of tokens/second.

    .venv/bin/python benchmarks/bench_training.py      # prints the tables, updates RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from paired_stats import RESULTS, quartiles, reexec_with_malloc_env, write_section

SECTION = "## Training: buckets of one budget, bucketed vs fixed size"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    reexec_with_malloc_env()

    import torch

    from cogfun.buckets import num_tokens, plan_buckets
    from cogfun.models.presets import build_transformer, build_vae
    from cogfun.models.text_encoder import build_tiny_t5_encoder, build_toy_tokenizer
    from cogfun.pipelines.components import toy_vocabulary
    from cogfun.training.loss import PromptCache, build_training_scheduler, training_loss

    torch.set_num_threads(args.threads)
    transformer = build_transformer("toy", meta=False).train()
    vae = build_vae("tiny").eval().requires_grad_(False)
    tokenizer = build_toy_tokenizer(toy_vocabulary(), model_max_length=transformer.config.max_text_seq_length)
    text_encoder = build_tiny_t5_encoder(len(tokenizer), d_model=transformer.config.text_embed_dim)
    prompts = PromptCache(tokenizer, text_encoder, transformer.config.max_text_seq_length)
    scheduler = build_training_scheduler()
    optimizer = torch.optim.AdamW(transformer.parameters(), lr=1e-4)
    plan = plan_buckets(150, base_size=(64, 80), rule="article", max_frames=17, num_ratios=5, min_ratio=0.5,
                        max_ratio=2.0)
    generator = torch.Generator().manual_seed(0)

    def step(h: int, w: int, f: int, batch: int) -> float:
        pixels = torch.rand(batch, f, 3, h, w, generator=generator) * 2 - 1
        data = {"pixel_values": pixels, "text": ["a red circle moving left on a grey background"] * batch}
        start = time.perf_counter()
        out = training_loss(data, transformer, vae, scheduler, prompts, generator)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - start

    # 1. Every bucket of the budget, batch 2.
    rows = []
    for b in plan:
        step(b.height, b.width, b.num_frames, 2)  # warm-up
        times = [step(b.height, b.width, b.num_frames, 2) for _ in range(args.rounds)]
        tokens = 2 * num_tokens(b.height, b.width, b.num_frames)
        rows.append((f"{b.height}x{b.width}x{b.num_frames}", tokens, statistics.median(times), *quartiles(times)))
    medians = [r[2] for r in rows]
    table1 = ["| bucket | tokens/step | median s/step (IQR) | tokens/s |", "|---|---|---|---|"]
    table1 += [f"| {n} | {t} | {m:.3f} ({q1:.3f}-{q3:.3f}) | {t / m:.0f} |" for n, t, m, q1, q3 in rows]
    spread = max(medians) / min(medians)

    # 2. Bucketed (cycling over buckets, batch keeps ~400 tokens/step) vs fixed 64x64x17 batch 5 (400 tokens).
    target = 400
    cycle = [(b.height, b.width, b.num_frames, max(1, round(target / num_tokens(b.height, b.width, b.num_frames))))
             for b in plan]
    fixed = (64, 64, 17, 5)
    ratios, bucketed_tps, fixed_tps = [], [], []
    for r in range(args.rounds):
        h, w, f, bs = cycle[r % len(cycle)]
        order = [("bucketed", (h, w, f, bs)), ("fixed", fixed)]
        if r % 2:
            order.reverse()
        tps = {}
        for name, (hh, ww, ff, bb) in order:
            tps[name] = bb * num_tokens(hh, ww, ff) / step(hh, ww, ff, bb)
        bucketed_tps.append(tps["bucketed"])
        fixed_tps.append(tps["fixed"])
        ratios.append(tps["bucketed"] / tps["fixed"])
    ratio = statistics.median(ratios)

    text = "\n".join([
        SECTION, "",
        f"Machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} thread(s); command: "
        "`.venv/bin/python benchmarks/bench_training.py`. Full training steps of the 'toy' transformer "
        "(7.2M parameters) with the tiny VAE, budget 150 tokens (the toy-model recipe's plan), batch 2, "
        f"{args.rounds} steps per bucket after a warm-up.", "",
        *table1, "",
        f"Step-time spread across the buckets: slowest / fastest median = {spread:.2f}x.", "",
        f"Bucketed (cycling over the buckets, about {target} tokens per step) vs fixed 64x64x17 x 5 "
        f"({fixed[3] * num_tokens(64, 64, 17)} tokens per step), {args.rounds} paired interleaved rounds: median "
        f"tokens/s bucketed {statistics.median(bucketed_tps):.0f}, fixed {statistics.median(fixed_tps):.0f}, "
        f"median per-round ratio bucketed/fixed = {ratio:.3f}.",
    ])
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
        print(f"\nwrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
