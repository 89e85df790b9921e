"""The default model's training step on the latent cache: float32 against bf16 autocast, speed and numerics.

    MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=68719476736 \\
        .venv/bin/python benchmarks/bench_cached_step.py [--rounds 9] [--threads 2] [--write]

What the toy recipe's transformer stage runs per step (``cached_training_loss``: no VAE, no T5): the ``toy-p1``
transformer (7.1M parameters), batch 8 of 64x96x17 clips (5 x 8 x 12 latents = 480 video tokens + 16 text tokens),
forward, backward and AdamW, on random latents, prompt embeddings and inpaint latents of the cache's shapes.
float32 against ``torch.autocast("cpu", torch.bfloat16)`` (what ``mixed_precision: bf16`` makes accelerate do):
paired, interleaved rounds in one process (two models with the same weights and optimiser), per-way median
seconds, the median of the per-round ratio bf16 / fp32 with its interquartile range, tokens per second and the
achieved FLOP/s (forward + backward = 3x the forward's matmul FLOPs, counted by ``torch.utils.flop_counter``).
Numerics on one fixed batch: the relative difference of the loss and the cosine between the two gradients.
``--write`` replaces the section in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

from paired_stats import quartiles, random_cache_batch, reexec_with_malloc_env, write_section

SECTION = "## Training step on the latent cache: float32 vs bf16 autocast (toy-p1)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    reexec_with_malloc_env()

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cogfun.models.presets import build_transformer
    from cogfun.training.loss import build_training_scheduler, cached_training_loss

    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    b, f, h, w = args.batch, 5, 8, 12  # latent frames, height, width of random_cache_batch
    batch = random_cache_batch(b)
    empty = torch.zeros(16, 128)
    scheduler = build_training_scheduler()
    models = {"fp32": build_transformer("toy-p1", seed=0).train()}
    models["bf16"] = copy.deepcopy(models["fp32"])
    optimisers = {way: torch.optim.AdamW(m.parameters(), lr=1e-4) for way, m in models.items()}

    def step(way: str, seed: int = 0, optimise: bool = True):
        model = models[way]
        context = torch.autocast("cpu", dtype=torch.bfloat16) if way == "bf16" else torch.autocast("cpu", enabled=False)
        with context:
            out = cached_training_loss(batch, model, scheduler, empty, torch.Generator().manual_seed(seed),
                                       t2v_prob=0.35)
        out.loss.backward()
        if optimise:
            optimisers[way].step()
        optimisers[way].zero_grad(set_to_none=not optimise)
        return out.loss

    # numerics on one batch, before any update: loss and gradient of the same weights
    grads, losses = {}, {}
    for way, model in models.items():
        context = torch.autocast("cpu", dtype=torch.bfloat16) if way == "bf16" else torch.autocast("cpu", enabled=False)
        with context:
            loss = cached_training_loss(batch, model, scheduler, empty, torch.Generator().manual_seed(1),
                                        t2v_prob=0.35).loss
        loss.backward()
        grads[way] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        losses[way] = float(loss)
        model.zero_grad(set_to_none=True)
    cosine = float(torch.nn.functional.cosine_similarity(grads["fp32"], grads["bf16"], dim=0))
    loss_diff = abs(losses["bf16"] - losses["fp32"]) / losses["fp32"]

    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            models["fp32"](batch["latents"], batch["prompt_embeds"], torch.tensor([500] * b),
                           inpaint_latents=batch["inpaint"][:, 0])
    flops = 3 * counter.get_total_flops()

    for way in models:  # warm-up
        step(way)
        step(way)
    seconds = {way: [] for way in models}
    for r in range(args.rounds):
        order = ("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")
        for way in order:
            start = time.perf_counter()
            step(way, seed=r)
            seconds[way].append(time.perf_counter() - start)
    ratios = [x / y for x, y in zip(seconds["bf16"], seconds["fp32"])]
    q1, q3 = quartiles(ratios)
    tokens = b * (f * h * w + 16)
    rows = [f"| {way} | {statistics.median(seconds[way]):.3f} | {tokens / statistics.median(seconds[way]):.0f} | "
            f"{flops / statistics.median(seconds[way]) / 1e9:.1f} |" for way in models]
    text = "\n".join([
        SECTION, "",
        f"Machine: {platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), {platform.system()}; "
        "CPU shared with other jobs (a few % of noise).", "",
        f"Command: `.venv/bin/python benchmarks/bench_cached_step.py --rounds {args.rounds} --threads {args.threads}` "
        f"(whole script {time.perf_counter() - began:.0f} s). One step = `cached_training_loss` + backward + AdamW, "
        f"batch {b} of 64x96x17 ({tokens} tokens with the text), random tensors of the cache's shapes; "
        f"{flops / 1e9:.1f} GFLOP a step (3x the forward's, torch's flop counter).", "",
        "| precision | median s / step | tokens / s | GFLOP/s |", "|---|---|---|---|", *rows, "",
        f"Median ratio bf16 / fp32: **{statistics.median(ratios):.3f}** (IQR {q1:.3f}-{q3:.3f}, {args.rounds} "
        f"rounds). Numerics on one batch before any update: loss {losses['fp32']:.5f} (fp32) vs "
        f"{losses['bf16']:.5f} (bf16), relative difference {loss_diff:.2e}; gradient cosine {cosine:.5f}.", "",
    ])
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
