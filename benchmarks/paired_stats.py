"""Shared helpers of the benchmark scripts: steady malloc, paired-ratio statistics, RESULTS.md sections.

Method (ENV-NOTES.md): glibc malloc thresholds set at start-up, warm-up, interleaved paired rounds, medians of
per-round ratios, and a one-sided sign test over rounds.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
from pathlib import Path

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
RESULTS = Path(__file__).with_name("RESULTS.md")


def reexec_with_malloc_env() -> None:
    """glibc reads the malloc thresholds at start-up only: restart this process with them if unset."""
    if all(os.environ.get(k) == v for k, v in MALLOC_ENV.items()):
        return
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})


def quartiles(values: list[float]) -> tuple[float, float]:
    """First and third quartiles."""
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def sign_test(ratios: list[float]) -> tuple[int, float, float]:
    """Rounds where the first side was faster (ratio < 1), and one-sided p-values for "faster" and "slower"."""
    n, faster = len(ratios), sum(r < 1.0 for r in ratios)
    slower = sum(r > 1.0 for r in ratios)

    def tail(k: int) -> float:  # P(X >= k), X ~ Bin(n, 1/2)
        return sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n

    return faster, tail(faster), tail(slower)


def write_section(section: str, text: str, path: Path = RESULTS) -> None:
    """Replace the section headed ``section`` of RESULTS.md (or append it), keeping every other section."""
    old = path.read_text() if path.exists() else "# cogfun benchmarks\n"
    if section in old:
        start = old.index(section)
        end = old.find("\n## ", start + len(section))
        new = old[:start] + text.rstrip("\n") + ("\n" + old[end:] if end != -1 else "\n")
    else:
        new = old.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    path.write_text(new)


def random_cache_batch(batch_size: int, seed: int = 0) -> dict:
    """A batch of random tensors of the toy latent cache's shapes at 64x96x17 (5 x 8 x 12 latents, 16 prompt tokens
    of width 128, 3 masks' inpaint latents): what ``cached_training_loss`` reads in the recipe's transformer stage."""
    import torch

    b, f, c, h, w, k = batch_size, 5, 16, 8, 12, 3
    g = torch.Generator().manual_seed(seed)
    return dict(latents=torch.randn(b, f, c, h, w, generator=g), prompt_embeds=torch.randn(b, 16, 128, generator=g),
                inpaint=torch.randn(b, k, f, 17, h, w, generator=g), inpaint_full=torch.zeros(b, k, dtype=torch.bool))
