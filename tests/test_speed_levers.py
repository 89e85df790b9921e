"""diffusers' speed levers through the one pipeline (cogfun.pipelines.speed_levers), on the tiny preset."""

import warnings

import pytest
import torch

from cogfun.pipelines.components import load_pipeline
from cogfun.pipelines.speed_levers import SPEED_LEVERS, disable_speed_levers, enable_speed_lever

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

STEPS = 10
CALL = dict(height=32, width=32, num_frames=9, num_inference_steps=STEPS, guidance_scale=6.0, output_type="latent")


@pytest.fixture(scope="module")
def pipe():
    pipe = load_pipeline("tiny")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _run(pipe):
    """Final latents and how often the last block's attention really ran."""
    calls = []
    hook = pipe.transformer.transformer_blocks[-1].attn1.to_q.register_forward_hook(lambda *a: calls.append(1))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FasterCache announces itself as experimental
            latents = pipe.text_to_video("a red circle", generator=torch.Generator().manual_seed(0), **CALL).frames
    finally:
        hook.remove()
    return latents, len(calls)


@pytest.mark.parametrize("lever, options", [
    ("first-block-cache", dict(threshold=0.5)),
    ("pab", {}),
    ("faster-cache", {}),
])
def test_each_cache_skips_work_stays_close_and_disables_cleanly(pipe, lever, options):
    base, full_calls = _run(pipe)
    assert full_calls == STEPS  # one call a step holds both CFG halves
    enable_speed_lever(pipe, lever, **options)
    try:
        cached, calls = _run(pipe)
    finally:
        disable_speed_levers(pipe)
    assert calls < STEPS  # the cache really skipped the block's attention on some steps
    difference = float((cached - base).abs().max())
    assert 0 < difference < 0.1 * float(base.abs().max())  # an approximation, not a different sample
    again, calls_again = _run(pipe)
    assert calls_again == STEPS and torch.equal(again, base)  # disabled: exactly the uncached result


def test_pipeline_exposes_the_timestep_to_the_hooks(pipe):
    seen = []

    def record(p, i, t, tensors):
        seen.append((int(t), int(p.current_timestep)))
        return {}

    pipe.text_to_video("a red circle", generator=torch.Generator().manual_seed(0), callback_on_step_end=record,
                       **{**CALL, "num_inference_steps": 3})
    assert len(seen) == 3 and all(t == current for t, current in seen)
    assert pipe.current_timestep is None  # outside the loop


def test_compile_keeps_the_outputs(pipe):
    base, _ = _run(pipe)
    fresh = load_pipeline("tiny")
    fresh.set_progress_bar_config(disable=True)
    enable_speed_lever(fresh, "compile", backend="eager")  # the compile path without a C++ toolchain
    compiled, _ = _run(fresh)
    torch.testing.assert_close(compiled, base, atol=1e-5, rtol=0)


def test_unknown_or_impossible_levers_are_refused(pipe):
    with pytest.raises(ValueError, match="choose one of first-block-cache"):
        enable_speed_lever(pipe, "teacache")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs CUDA"):
            enable_speed_lever(pipe, "group-offload")
    with pytest.raises(ValueError, match="first-block-cache: .*accepted options"):
        enable_speed_lever(pipe, "first-block-cache", treshold=0.1)
    assert set(SPEED_LEVERS) == {"first-block-cache", "faster-cache", "pab", "group-offload", "compile"}
