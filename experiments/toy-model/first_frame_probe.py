"""Does the transformer read the given first frame, and where its object is? A probe on cached training samples.

Image-to-video gives the model its first frame only through the inpaint latents (mask channel and masked-video
latents of latent frame 0). This takes cached samples whose mask kind is ``first_frames`` (frame 0 kept, and up to
3 more), noises their clean latents at a few fixed timesteps (one noise draw, shared by every condition) and
measures the v-prediction error on latent frames 1.. (the generated ones) under four conditionings:

- ``own``: the sample's own inpaint latents (what training and image-to-video give);
- ``rolled``: the same, with latent frame 0 rolled by ``roll`` columns: on a plain background the object moves and
  the background stays, so the gap to ``own`` is what the object's *position* in the given frame is worth;
- ``other``: another sample's inpaint latents (next in the batch): colour, background and object all wrong;
- ``none``: zeros, the text-to-video conditioning.

A model that copies the given object's place has ``rolled`` well above ``own``; one that ignores it has them equal
(DIAGNOSIS.md section 16).

    .venv/bin/python experiments/toy-model/first_frame_probe.py MODEL_DIR experiments/runs/toy-cache \\
        [--bucket 64x96x17] [--samples 48] [--timesteps 999 800 500] [--roll 4] [--out probe.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

CONDITIONS = ("own", "rolled", "other", "none")


def first_frame_samples(cache: str | Path, bucket: str, samples: int) -> dict[str, torch.Tensor]:
    """The first ``samples`` cached clips of ``bucket`` with a ``first_frames`` mask, in shard order.

    Returns ``latents`` ``(N, F, C, h, w)``, ``inpaint`` ``(N, F, 1 + C, h, w)`` (that mask's inpaint latents) and
    ``prompt_embeds`` ``(N, L, D)``.
    """
    from safetensors.torch import load_file

    folder = Path(cache) / bucket
    indexes = sorted(folder.glob("shard-*.json"))
    if not indexes:
        buckets = sorted(p.name for p in Path(cache).iterdir() if p.is_dir()) if Path(cache).is_dir() else []
        raise ValueError(f"no cache shards in {folder}; buckets of {cache}: {buckets}")
    picked: dict[str, list[torch.Tensor]] = {"latents": [], "inpaint": [], "prompt_embeds": []}
    for index_path in indexes:
        index = json.loads(index_path.read_text())
        if "mask_kinds" not in index:
            raise ValueError(f"{index_path} has no mask_kinds: make the cache with `cogfun cache --inpaint-masks K`")
        shard = load_file(str(index_path.with_suffix(".safetensors")))
        for i, kinds in enumerate(index["mask_kinds"]):
            if "first_frames" in kinds and len(picked["latents"]) < samples:
                picked["latents"].append(shard["latents"][i])
                picked["inpaint"].append(shard["inpaint"][i, kinds.index("first_frames")])
                picked["prompt_embeds"].append(shard["prompt_embeds"][i])
        if len(picked["latents"]) == samples:
            break
    if len(picked["latents"]) < 2:
        raise ValueError(f"{folder} holds {len(picked['latents'])} samples with a first_frames mask; the probe "
                         "needs at least 2 (one is swapped with the next)")
    return {key: torch.stack(values).float() for key, values in picked.items()}


def conditionings(inpaint: torch.Tensor, roll: int) -> dict[str, torch.Tensor]:
    """The four inpaint conditionings of :data:`CONDITIONS` for a batch ``(N, F, 1 + C, h, w)``."""
    rolled = inpaint.clone()
    rolled[:, 0] = inpaint[:, 0].roll(roll, dims=-1)
    return {"own": inpaint, "rolled": rolled, "other": inpaint.roll(1, dims=0), "none": torch.zeros_like(inpaint)}


@torch.no_grad()
def probe(transformer, scheduler, latents: torch.Tensor, inpaint: torch.Tensor, prompt_embeds: torch.Tensor,
          timesteps=(999, 800, 500), roll: int = 4, seed: int = 0) -> dict[int, dict[str, float]]:
    """``{timestep: {condition: MSE of the v-prediction on latent frames 1..}}`` (see the module docstring)."""
    if latents.shape[1] < 2:
        raise ValueError(f"the probe needs clips of 2 or more latent frames (got {latents.shape[1]})")
    transformer.eval()
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(seed))
    rope = transformer.rope_for(latents) if hasattr(transformer, "rope_for") else None
    conds = conditionings(inpaint, roll)
    out: dict[int, dict[str, float]] = {}
    for t in timesteps:
        steps = torch.full((latents.shape[0],), int(t))
        noisy = scheduler.add_noise(latents, noise, steps)
        target = scheduler.get_velocity(latents, noise, steps)
        out[int(t)] = {}
        for name, cond in conds.items():
            pred = transformer(noisy, prompt_embeds, steps, inpaint_latents=cond, image_rotary_emb=rope,
                               return_dict=False)[0]
            out[int(t)][name] = float((pred.float() - target.float())[:, 1:].square().mean())
    return out


def markdown(result: dict[int, dict[str, float]], roll: int) -> str:
    lines = [f"| timestep | own | rolled {roll} columns | another clip's | none (text-to-video) | rolled / own |",
             "|---|---|---|---|---|---|"]
    for t, row in result.items():
        lines.append(f"| {t} | {row['own']:.4f} | {row['rolled']:.4f} | {row['other']:.4f} | {row['none']:.4f} | "
                     f"{row['rolled'] / row['own']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a model folder (its transformer and scheduler)")
    parser.add_argument("cache", help="a latent cache made with `cogfun cache --inpaint-masks K`")
    parser.add_argument("--bucket", default="64x96x17")
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--timesteps", type=int, nargs="+", default=[999, 800, 500])
    parser.add_argument("--roll", type=int, default=4, help="columns the given frame is rolled by")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the result (JSON) here")
    args = parser.parse_args(argv)
    from cogfun.pipelines.components import load_pipeline

    pipe = load_pipeline(args.model, quiet=True)
    batch = first_frame_samples(args.cache, args.bucket, args.samples)
    result = probe(pipe.transformer, pipe.scheduler, batch["latents"], batch["inpaint"], batch["prompt_embeds"],
                   args.timesteps, args.roll, args.seed)
    print(f"{args.model}: {len(batch['latents'])} samples of {args.bucket}, MSE on latent frames 1..")
    print(markdown(result, args.roll))
    record = dict(model=args.model, cache=args.cache, bucket=args.bucket, samples=len(batch["latents"]),
                  roll=args.roll, seed=args.seed, mse=result)
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    return record


if __name__ == "__main__":
    main()
