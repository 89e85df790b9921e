"""Does the transformer underfit or overfit? Text-to-video x0 error on training clips vs held-out clips.

For each timestep, the mean squared error of the predicted clean latents (text-to-video: zero inpaint latents, the
clip's own prompt, one fixed noise draw shared by both sets) on N clips of the latent cache (the training set) and
on N held-out clips (``held_out_shape_specs``, rendered and encoded with the model's own VAE and T5), beside the
error of a prediction that knows only the background (each latent frame's per-channel spatial median). Training
error far below held-out error means memorising; equal errors mean the model is short of capacity or steps.

    .venv/bin/python experiments/toy-model/generalisation_gap.py cogfun/assets/toy-model --cache experiments/runs/toy-cache
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from cogfun.data.latent_cache import encode_prompts, encode_video_latents, load_encoders
from cogfun.data.toy import render_clip
from cogfun.eval.benchmark import held_out_shape_specs
from cogfun.models.transformer import CogVideoXFunTransformer3DModel
from cogfun.training.loss import build_training_scheduler

TIMESTEPS = (999, 900, 750, 500, 250, 100)


def training_clips(cache: Path, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` clips of the cache's 64x96x17 bucket: latents (n, F, C, h, w) and prompt embeddings."""
    from safetensors.torch import load_file

    shard = load_file(sorted((cache / "64x96x17").glob("shard-*.safetensors"))[0])
    return shard["latents"][:n], shard["prompt_embeds"][:n]


def held_out_clips(model: Path, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` held-out plain-background clips at 64x96x17, encoded as the cache encodes (posterior mode)."""
    encoders = load_encoders(model)
    items = held_out_shape_specs(n)
    latents = []
    for item in items:
        frames = torch.from_numpy(render_clip(item.spec, 64, 96, 17, item.render_seed))  # (F, H, W, 3) in [0, 1]
        mode, _ = encode_video_latents(encoders, frames.permute(0, 3, 1, 2) * 2 - 1)
        latents.append(mode)
    return torch.stack(latents), encode_prompts(encoders, [item.caption for item in items])


@torch.no_grad()
def x0_errors(transformer, x0: torch.Tensor, text: torch.Tensor, seed: int = 0,
              timesteps: tuple[int, ...] = TIMESTEPS) -> dict[str, float]:
    """Per-timestep text-to-video x0 MSE (one noise draw per timestep, in the given order), and the error of the
    background-only prediction. x0: (N, F, C, h, w) latents; text: (N, L, D) prompt embeddings."""
    b, f, _, h, w = x0.shape
    scheduler = build_training_scheduler()
    generator = torch.Generator().manual_seed(seed)
    background = x0.flatten(3).median(-1).values[..., None, None]
    errors = {"background_only": round(float((x0 - background).square().mean()), 4)}
    for t in timesteps:
        noise = torch.randn(x0.shape, generator=generator)
        steps = torch.full((b,), t)
        noisy = scheduler.add_noise(x0, noise, steps)
        v = transformer(noisy, text, steps, inpaint_latents=torch.zeros(b, f, 17, h, w), return_dict=False)[0]
        a = scheduler.alphas_cumprod[t]
        errors[f"t{t}"] = round(float((a.sqrt() * noisy - (1 - a).sqrt() * v - x0).square().mean()), 4)
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="a pipeline folder (transformer, VAE, T5)")
    parser.add_argument("--cache", type=Path, required=True, help="the latent cache the model was trained on")
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformer = CogVideoXFunTransformer3DModel.from_pretrained(args.model / "transformer").eval()
    result = {"model": str(args.model), "clips": args.clips}
    for name, (x0, text) in (("train", training_clips(args.cache, args.clips)),
                             ("held_out", held_out_clips(args.model, args.clips))):
        result[name] = x0_errors(transformer, x0, text)
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
