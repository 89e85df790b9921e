"""The default model's training step on the latent cache: bf16 eager against bf16 + ``torch.compile``.

    MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=68719476736 \\
        .venv/bin/python benchmarks/bench_compiled_step.py [--rounds 9] [--threads 2] [--write]

What the toy recipe's transformer stage runs per step: ``cached_training_loss`` of the shipped architecture
(``toy-p1`` with 8 layers, 14.0M parameters), batch 8 of 64x96x17 clips on random tensors of the cache's shapes,
forward, backward and AdamW, under ``torch.autocast("cpu", torch.bfloat16)`` (the recipe's ``mixed_precision:
bf16``). The second way is the same model wrapped by ``torch.compile`` (inductor, default mode; forward and backward
compiled, AdamW eager). Reported: the compile time (the first two steps, one shape), paired interleaved rounds in
one process (two models with the same weights and optimiser state), per-way median seconds, the median of the
per-round ratio compiled / eager with its interquartile range, and the numerics on one fixed batch before any
update (relative loss difference, cosine of the two gradients). The recipe trains three bucket shapes (64x96,
96x64, 64x64), so a compiled run compiles three times. ``--write`` replaces the section in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

from paired_stats import quartiles, random_cache_batch, reexec_with_malloc_env, write_section

SECTION = "## Training step on the latent cache: bf16 eager vs bf16 + torch.compile (8 layers)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    reexec_with_malloc_env()

    import torch

    from cogfun.models.presets import build_transformer
    from cogfun.training.loss import build_training_scheduler, cached_training_loss

    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    b, f, h, w = args.batch, 5, 8, 12  # latent frames, height, width of random_cache_batch
    batch = random_cache_batch(b)
    empty = torch.zeros(16, 128)
    scheduler = build_training_scheduler()
    eager = build_transformer("toy-p1", seed=0, num_layers=8).train()
    twin = copy.deepcopy(eager)
    models = {"eager": eager, "compiled": torch.compile(twin)}
    optimisers = {"eager": torch.optim.AdamW(eager.parameters(), lr=1e-4),
                  "compiled": torch.optim.AdamW(twin.parameters(), lr=1e-4)}

    def loss_of(way: str, seed: int):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return cached_training_loss(batch, models[way], scheduler, empty, torch.Generator().manual_seed(seed),
                                        t2v_prob=0.35).loss

    def step(way: str, seed: int = 0):
        loss_of(way, seed).backward()
        optimisers[way].step()
        optimisers[way].zero_grad(set_to_none=True)

    # numerics on one batch, before any update (this also compiles forward and backward)
    start = time.perf_counter()
    grads, losses = {}, {}
    for way in ("compiled", "eager"):
        loss = loss_of(way, seed=1)
        loss.backward()
        params = twin.parameters() if way == "compiled" else eager.parameters()
        grads[way] = torch.cat([p.grad.flatten().float() for p in params if p.grad is not None])
        losses[way] = float(loss.detach())
        optimisers[way].zero_grad(set_to_none=True)
        if way == "compiled":
            compile_seconds = time.perf_counter() - start
    cosine = float(torch.nn.functional.cosine_similarity(grads["eager"], grads["compiled"], dim=0))
    loss_diff = abs(losses["compiled"] - losses["eager"]) / losses["eager"]

    for way in models:  # warm-up (the compiled way may still specialise on its first optimiser steps)
        step(way)
        step(way)
    seconds = {way: [] for way in models}
    for r in range(args.rounds):
        order = ("eager", "compiled") if r % 2 == 0 else ("compiled", "eager")
        for way in order:
            start = time.perf_counter()
            step(way, seed=r)
            seconds[way].append(time.perf_counter() - start)
    ratios = [x / y for x, y in zip(seconds["compiled"], seconds["eager"])]
    q1, q3 = quartiles(ratios)
    tokens = b * (f * h * w + 16)
    rows = [f"| bf16 {way} | {statistics.median(seconds[way]):.3f} | {tokens / statistics.median(seconds[way]):.0f} |"
            for way in models]
    text = "\n".join([
        SECTION, "",
        f"Machine: {platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), {platform.system()}.", "",
        f"Command: `.venv/bin/python benchmarks/bench_compiled_step.py --rounds {args.rounds} --threads {args.threads}` "
        f"(whole script {time.perf_counter() - began:.0f} s). One step = `cached_training_loss` + backward + AdamW "
        f"under bf16 autocast, the shipped 8-layer toy-p1 transformer, batch {b} of 64x96x17 ({tokens} tokens with "
        f"the text), random tensors of the cache's shapes. Compiling (first forward and backward, one shape): "
        f"{compile_seconds:.0f} s.", "",
        "| way | median s / step | tokens / s |", "|---|---|---|", *rows, "",
        f"Median ratio compiled / eager: **{statistics.median(ratios):.3f}** (IQR {q1:.3f}-{q3:.3f}, {args.rounds} "
        f"rounds). Numerics on one batch before any update: loss {losses['eager']:.5f} (eager) vs "
        f"{losses['compiled']:.5f} (compiled), relative difference {loss_diff:.2e}; gradient cosine {cosine:.5f}.", "",
    ])
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
