"""How often does a cached training mask hide the whole object, as the benchmark's inpaint box does?

The ``inpaint`` benchmark hides the object's whole track and keeps the rest, so only the caption says what belongs in
the hole. For every clip of the latent cache and each of its cached masks, this reads the latent mask (channel 0 of
the stored inpaint latents; as in the reference it holds what is *kept*: 1 - the pixel mask, resized to the latent
grid and times the VAE's scaling factor, so 0 = regenerate) over the latent cells the object's track touches (``shape_track`` from
the clip's spec and render seed in the data's metadata) and counts, per mask kind, the masks that hide all of them
in every latent frame while keeping something else. No model runs (a few seconds).

    .venv/bin/python experiments/toy-model/mask_coverage.py experiments/runs/toy-cache experiments/toy-model/data/metadata.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.torch import load_file

from cogfun.data.toy import ToyClipSpec, shape_track

LATENT_CELL = 8  # pixels per latent cell (the toy VAE's spatial compression)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cache", type=Path, help="latent cache folder (cogfun cache ... --inpaint-masks K)")
    parser.add_argument("metadata", type=Path, help="the data's metadata.json (specs and render seeds)")
    args = parser.parse_args()
    metadata = json.loads(args.metadata.read_text())
    counts: dict[str, list[int]] = {}  # kind -> [masks, object hidden and something kept]
    for shard in sorted(args.cache.glob("*/shard-*.safetensors")):
        info = json.loads(shard.with_suffix(".json").read_text())
        height, width, num_frames = info["bucket"]
        masks = load_file(shard)["inpaint"][:, :, :, 0]  # (N, K, f, h, w)
        with safe_open(shard, "pt") as handle:
            scale = float(handle.metadata()["scaling_factor"])  # the mask channel's value where the clip is given
        for n, index in enumerate(info["indices"]):
            record = metadata[index]
            if (record["height"], record["width"]) != (height, width):
                raise ValueError(f"clip {index} is {record['height']}x{record['width']} but sits in the "
                                 f"{height}x{width} bucket; this count needs clips cached at their own size")
            centres, radius = shape_track(ToyClipSpec(**record["spec"]), height, width, num_frames, record["seed"])
            left = int(max(centres[:, 0].min() - radius, 0) // LATENT_CELL)
            right = int(np.ceil(min(centres[:, 0].max() + radius, width) / LATENT_CELL))
            top = int(max(centres[:, 1].min() - radius, 0) // LATENT_CELL)
            bottom = int(np.ceil(min(centres[:, 1].max() + radius, height) / LATENT_CELL))
            for k, kind in enumerate(info["mask_kinds"][n]):
                kept = masks[n, k] > 0.5 * scale  # (f, h, w) True where the clip is given
                hidden = not bool(kept[:, top:bottom, left:right].any()) and bool(kept.any())
                tally = counts.setdefault(kind, [0, 0])
                tally[0] += 1
                tally[1] += hidden
    summary = {kind: dict(masks=n, object_hidden_rest_kept=round(hidden / n, 3))
               for kind, (n, hidden) in sorted(counts.items())}
    n, hidden = (sum(t[i] for t in counts.values()) for i in (0, 1))
    summary["all kinds"] = dict(masks=n, object_hidden_rest_kept=round(hidden / n, 3))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
