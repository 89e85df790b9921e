"""The released sizes on a CUDA card: 50-step 480x720x49 generation, peak memory per offload mode, speed levers.

    .venv/bin/python benchmarks/bench_gpu.py [--models 2b 5b] [--steps 50] [--write]
    .venv/bin/python benchmarks/bench_gpu.py --dry-run            (CPU, toy sizes: checks the script end to end)

Builds the CogVideoX-Fun 2B and 5B InP transformers at their published sizes (``cogvideox-fun-2b-inp``,
``cogvideox-fun-5b-inp`` presets, docs/design.md) and diffusers' default ``AutoencoderKLCogVideoX`` (the released
VAE's architecture) with random bf16 weights (seed 0; normal(0, 0.02) so activations stay finite; speed and
memory do not depend on the values). The T5-XXL text encoder is not built: the pipeline gets random prompt and
negative-prompt embeddings of the released shape (226 x 4096), so text encoding is not in the figures.

Per model:

1. ``none``: a text-to-video call (DDIM, guidance 6, both CFG halves in one batch) with everything on the card:
   whole-call seconds, seconds per denoising step (the transformer loop, from a step callback), the VAE decode,
   and peak allocated memory (``torch.cuda.max_memory_allocated``);
2. ``vae-tiling``: the same with ``vae.enable_tiling()``: peak memory and decode time;
3. ``model-offload`` (``enable_model_cpu_offload``) and ``sequential-offload`` (``enable_sequential_cpu_offload``):
   peak memory on the card and the whole call (sequential offload runs ``--offload-steps`` steps only and
   reports the per-step time: it is slow by design);
4. speed levers (``cogfun.pipelines.speed_levers``): FirstBlockCache, PAB, FasterCache, group offload and
   ``torch.compile`` (first call compiles, not timed): seconds per step and the PSNR of the frames against
   ``none``'s (random weights: how far a lever moves this model, not what a trained model would lose).

Published anchors for base CogVideoX at 480x720x49, 50 steps: 2B about 45 s and 5B about 90 s on an H100.
``--write`` replaces the section "GPU: released sizes" in benchmarks/RESULTS.md with the card's name and figures.
``--dry-run`` runs every row on the CPU at 32x32x9, 2 steps, with each preset's config at tiny widths (2 heads x 32,
2 layers) and the tiny VAE (memory columns then read 0).
"""

from __future__ import annotations

import argparse
import gc
import platform
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
SECTION = "## GPU: released sizes (random bf16 weights)"
MODELS = {"2b": "cogvideox-fun-2b-inp", "5b": "cogvideox-fun-5b-inp"}
LEVERS = {"first-block-cache": dict(threshold=0.05), "pab": {}, "faster-cache": {}, "group-offload": {},
          "compile": {}}


def build_pipe(preset: str, dry_run: bool, device: str, dtype: torch.dtype):
    """A pipeline with a random transformer of ``preset`` and a random VAE (released architecture, or tiny)."""
    from diffusers import AutoencoderKLCogVideoX

    from cogfun.models.presets import build_transformer, build_vae
    from cogfun.pipelines.components import build_components
    from cogfun.pipelines.pipeline import CogVideoXFunPipeline

    parts = build_components("tiny", seed=0)  # tokenizer, toy T5 (unused: embeddings are given), scheduler
    if dry_run:  # the preset's own config (sincos or RoPE, channels) at tiny widths
        transformer = build_transformer(preset, meta=False, seed=0, num_attention_heads=2, attention_head_dim=32,
                                        num_layers=2, text_embed_dim=32, time_embed_dim=32)
        vae = build_vae("tiny", seed=0)
    else:
        transformer = build_transformer(preset, meta=True).to_empty(device=device)
        with torch.no_grad():
            for p in transformer.parameters():
                p.normal_(0, 0.02)
        torch.manual_seed(0)
        vae = AutoencoderKLCogVideoX()
    parts.update(transformer=transformer.to(device, dtype).eval(), vae=vae.to(device, dtype).eval())
    pipe = CogVideoXFunPipeline(**parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def embeds(pipe, device: str, dtype: torch.dtype) -> dict:
    cfg = pipe.transformer.config
    g = torch.Generator().manual_seed(0)
    shape = (1, cfg.max_text_seq_length, cfg.text_embed_dim)
    return dict(prompt_embeds=torch.randn(shape, generator=g).to(device, dtype),
                negative_prompt_embeds=torch.randn(shape, generator=g).to(device, dtype))


def generate(pipe, size: tuple[int, int, int], steps: int, text: dict) -> dict:
    """One call: frames, whole-call seconds, the denoising loop's seconds per step, decode seconds."""
    frames_n, height, width = size
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    marks = []

    def on_step(p, i, t, tensors):
        sync()
        marks.append(time.perf_counter())
        return {}

    sync()
    start = time.perf_counter()
    frames = pipe(height=height, width=width, num_frames=frames_n, num_inference_steps=steps, guidance_scale=6.0,
                  generator=torch.Generator().manual_seed(0), output_type="np", callback_on_step_end=on_step,
                  **text).frames[0]
    sync()
    end = time.perf_counter()
    per_step = (marks[-1] - marks[0]) / (len(marks) - 1) if len(marks) > 1 else marks[0] - start
    return dict(frames=frames, seconds=end - start, per_step=per_step, decode=end - marks[-1])


def peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0


def reset_peak() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def measure_model(name: str, args, device: str, dtype: torch.dtype) -> list[str]:
    from cogfun.eval.metrics import psnr
    from cogfun.pipelines.speed_levers import disable_speed_levers, enable_speed_lever

    size = (9, 32, 32) if args.dry_run else (49, 480, 720)
    steps = 2 if args.dry_run else args.steps
    rows = []

    def row(case: str, out: dict, memory: float, reference=None, note: str = "") -> None:
        quality = "" if reference is None else psnr(out["frames"], reference)
        quality = "identical" if quality != "" and np.isinf(quality) else (f"{quality:.1f}" if quality != "" else "-")
        rows.append(f"| {name} | {case} | {out['seconds']:.1f} | {out['per_step']:.3f} | {out['decode']:.1f} | "
                    f"{memory:.1f} | {quality} | {note} |")
        print(rows[-1], flush=True)

    reset_peak()
    pipe = build_pipe(MODELS[name], args.dry_run, device, dtype)
    text = embeds(pipe, device, dtype)
    generate(pipe, size, 2, text)  # warm-up
    reset_peak()
    base = generate(pipe, size, steps, text)
    row("none", base, peak_gib())
    reference = base["frames"]

    pipe.vae.enable_tiling()
    reset_peak()
    row("vae-tiling", generate(pipe, size, steps, text), peak_gib(), reference)
    pipe.vae.disable_tiling()

    for lever, options in LEVERS.items():
        if lever in ("group-offload",) and device != "cuda":
            rows.append(f"| {name} | {lever} | - | - | - | - | - | needs CUDA |")
            continue
        try:
            target = pipe
            if lever in ("group-offload", "compile"):  # not undoable: a fresh pipeline
                del pipe
                reset_peak()
                target = build_pipe(MODELS[name], args.dry_run, "cpu" if lever == "group-offload" else device, dtype)
                if lever == "group-offload":
                    target.vae.to(device)
            enable_speed_lever(target, lever, **({"backend": "eager"} if args.dry_run and lever == "compile"
                                                 else options))
            if lever == "compile":
                generate(target, size, 2, text)  # compiles
            reset_peak()
            row(lever, generate(target, size, steps, text), peak_gib(), reference)
            disable_speed_levers(target)
            pipe = target
        except Exception as err:  # noqa: BLE001  a lever that fails is a result, not the end of the run
            rows.append(f"| {name} | {lever} | - | - | - | - | - | failed: {type(err).__name__}: {err} |")
            pipe = build_pipe(MODELS[name], args.dry_run, device, dtype)

    for offload in ("model-offload", "sequential-offload"):
        del pipe
        reset_peak()
        pipe = build_pipe(MODELS[name], args.dry_run, "cpu", dtype)
        if device == "cuda":
            getattr(pipe, "enable_model_cpu_offload" if offload == "model-offload"
                    else "enable_sequential_cpu_offload")()
        else:
            rows.append(f"| {name} | {offload} | - | - | - | - | - | needs CUDA |")
            continue
        n = steps if offload == "model-offload" else min(steps, args.offload_steps)
        reset_peak()
        row(offload, generate(pipe, size, n, text), peak_gib(), None if n != steps else reference,
            note="" if n == steps else f"{n} steps")
    del pipe
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=sorted(MODELS))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--offload-steps", type=int, default=3, help="steps timed with sequential offload")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny presets, 2 steps at 32x32x9")
    parser.add_argument("--write", action="store_true", help="write the table into --results")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run this on a GPU machine, or pass --dry-run to check the script on a CPU")
    device = "cuda" if torch.cuda.is_available() and not args.dry_run else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    card = torch.cuda.get_device_name() if device == "cuda" else f"CPU dry run ({platform.machine()})"
    began = time.perf_counter()
    rows = []
    for name in args.models:
        rows += measure_model(name, args, device, dtype)
    size = "32x32x9, 2 steps (dry run, tiny widths)" if args.dry_run else f"480x720x49, {args.steps} steps"
    text = "\n".join([
        SECTION, "",
        f"Card: **{card}**, torch {torch.__version__}, {'bf16' if dtype == torch.bfloat16 else 'fp32'}; "
        f"text-to-video {size}, DDIM, guidance 6 (CFG batch 2), random weights, prompt embeddings given (no "
        f"T5-XXL). Whole script {time.perf_counter() - began:.0f} s. Command: "
        f"`.venv/bin/python benchmarks/bench_gpu.py{' --dry-run' if args.dry_run else ''} --write`. "
        "Anchors (base CogVideoX, H100, 50 steps): 2B about 45 s, 5B about 90 s.", "",
        "| model | case | call s | s / step | decode s | peak GiB | PSNR vs none (dB) | note |",
        "|---|---|---|---|---|---|---|---|", *rows, "",
    ])
    print(text)
    if args.write:
        import sys

        sys.path.insert(0, str(HERE))
        from paired_stats import write_section

        write_section(SECTION, text, path=args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
