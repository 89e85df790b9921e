"""diffusers' speed levers through cogfun's pipeline: speed against no lever and PSNR against the uncached output.

    MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=68719476736 \\
        .venv/bin/python benchmarks/bench_speed_levers.py [--runs 5] [--steps 20] [--threads 1] [--write]

The pipeline is the default model's tokenizer, T5 and VAE with a random ``bench-20m`` transformer (seed 0; the
same text width), text-to-video at 64x96, 17 frames, DDIM, guidance 6 (both CFG halves in one call), a fixed
seed, ``output_type="np"``. Levers (``cogfun.pipelines.speed_levers``): FirstBlockCache (threshold 0.1), Pyramid
Attention Broadcast and FasterCache with the module's defaults, and ``torch.compile`` (inductor; its first calls
compile and are not timed; a second pipeline object holds the compiled transformer). Group offload needs CUDA and
is measured by ``benchmarks/bench_gpu.py``.

Method: warm-up calls, then ``--runs`` rounds in which every case runs once in a rotating order (interleaved);
per-case median seconds, the median over rounds of the per-round ratio lever / none with its interquartile range,
and the PSNR of the lever's frames against the no-lever frames (the same call, same seed). Random weights: the
PSNR says how far a lever moves the output of this model, not what a trained checkpoint would lose.
``--write`` replaces the section in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
import warnings

import numpy as np
import torch

from cogfun.eval.metrics import psnr
from cogfun.models.presets import build_transformer
from cogfun.pipelines.components import load_pipeline
from cogfun.pipelines.speed_levers import disable_speed_levers, enable_speed_lever
from paired_stats import quartiles, reexec_with_malloc_env, write_section

SECTION = "## Speed levers through the pipeline (CPU, bench-20m)"
CACHES = {"first-block-cache": dict(threshold=0.1), "pab": {}, "faster-cache": {}}


def build(seed: int = 0):
    pipe = load_pipeline(quiet=True)
    pipe.register_modules(transformer=build_transformer("bench-20m", seed=seed).eval())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def call(pipe, steps: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FasterCache's "experimental" notice, untrained-size notices
        return pipe.text_to_video("a red circle moving right on a grey background", height=64, width=96,
                                  num_frames=17, num_inference_steps=steps, guidance_scale=6.0,
                                  generator=torch.Generator().manual_seed(0), output_type="np").frames[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (needs a C++ compiler)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    reexec_with_malloc_env()
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    pipe = build()
    compiled = None
    if not args.no_compile:
        compiled = copy.copy(pipe)
        compiled.register_modules(transformer=copy.deepcopy(pipe.transformer))
        enable_speed_lever(compiled, "compile")

    def run(case: str) -> tuple[float, np.ndarray]:
        target = compiled if case == "compile" else pipe
        if case in CACHES:
            enable_speed_lever(pipe, case, **CACHES[case])
        try:
            start = time.perf_counter()
            frames = call(target, args.steps)
            return time.perf_counter() - start, frames
        finally:
            disable_speed_levers(pipe)

    cases = ["none", *CACHES, *(["compile"] if compiled is not None else [])]
    reference = None
    for case in cases:  # warm-up (compile compiles here), and the reference frames
        _, frames = run(case)
        _, frames = run(case) if case == "compile" else (None, frames)
        reference = frames if case == "none" else reference
    seconds = {case: [] for case in cases}
    quality = {}
    for r in range(args.runs):
        order = cases[r % len(cases):] + cases[:r % len(cases)]
        for case in order:
            elapsed, frames = run(case)
            seconds[case].append(elapsed)
            quality[case] = psnr(frames, reference)
    rows = []
    for case in cases:
        ratios = [t / n for t, n in zip(seconds[case], seconds["none"])]
        q1, q3 = quartiles(ratios) if len(ratios) > 1 else (ratios[0], ratios[0])
        score = "identical" if np.isinf(quality[case]) else f"{quality[case]:.1f}"
        rows.append(f"| {case} | {statistics.median(seconds[case]):.2f} | **{statistics.median(ratios):.3f}** "
                    f"({q1:.3f}-{q3:.3f}) | {score} |")
    text = "\n".join([
        SECTION, "",
        f"Machine: {platform.machine()}, torch {torch.__version__} ({args.threads} thread(s)), {platform.system()}; "
        "CPU shared with other jobs, so expect several % of noise.", "",
        f"Command: `.venv/bin/python benchmarks/bench_speed_levers.py --runs {args.runs} --steps {args.steps}` "
        f"(whole script {time.perf_counter() - began:.0f} s). Text-to-video 64x96x17, {args.steps} DDIM steps, "
        "guidance 6, the default model's T5 and VAE with a random bench-20m transformer (seed 0). Ratios are medians "
        "of per-round ratios lever / none (interquartile range); PSNR of the frames against the no-lever frames "
        "(random weights: how far a lever moves this model's output).", "",
        "| lever | median s | ratio to none (IQR) | PSNR vs none (dB) |", "|---|---|---|---|", *rows, "",
    ])
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
