"""How often does a cached training mask hide the whole object, as the benchmark's inpaint box does?

The ``inpaint`` benchmark hides the object's whole track and keeps the rest, so only the caption says what belongs in
the hole. For every clip of a latent cache this draws again the pixel masks the cache encoded
(``cogfun.data.latent_cache.draw_cached_masks``, seeded by the cache seed and the clip's index; plus the
``object_box`` mask of a cache made with ``--object-box-masks``), checks their kinds against the shard's index, and
counts per kind the masks that cover the object's bounding box in every frame (``object_track_box`` of that frame,
from the clip's spec and render seed in the data's metadata) while keeping some other pixel. No model runs (about a minute).

    .venv/bin/python experiments/toy-model/mask_coverage.py experiments/runs/toy-cache experiments/toy-model/data/metadata.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from cogfun.data.latent_cache import draw_cached_masks, object_box_mask
from cogfun.data.toy import ToyClipSpec, object_track_box


def hides_object(mask: torch.Tensor, spec: ToyClipSpec, seed: int) -> bool:
    """Whether ``mask`` ``(F, H, W)`` (1 = regenerate) covers the object's bounding box in every frame and keeps
    some pixel."""
    num_frames, height, width = mask.shape
    for frame in range(num_frames):
        top, bottom, left, right = object_track_box(spec, height, width, num_frames, seed, pad=0,
                                                    frames=slice(frame, frame + 1))
        if not bool((mask[frame, top:bottom, left:right] > 0.5).all()):
            return False
    return bool((mask < 0.5).any())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cache", type=Path, help="latent cache folder (cogfun cache ... --inpaint-masks K)")
    parser.add_argument("metadata", type=Path, help="the data's metadata.json (specs and render seeds)")
    args = parser.parse_args()
    metadata = json.loads(args.metadata.read_text())
    options = json.loads((args.cache / "options.json").read_text())
    counts: dict[str, list[int]] = {}  # kind -> [masks, object hidden and something kept]
    for index_path in sorted(args.cache.glob("*/shard-*.json")):
        info = json.loads(index_path.read_text())
        height, width, num_frames = info["bucket"]
        for row, index in enumerate(info["indices"]):
            entry = metadata[index]
            boxes = bool(options.get("object_box_masks"))
            box = object_box_mask(entry, (height, width, num_frames), options["frame_stride"]) if boxes else None
            masks, kinds, _ = draw_cached_masks(options["inpaint_masks"], num_frames, height, width,
                                                options["mask_probabilities"], (options["seed"], index), box, boxes)
            if kinds != info["mask_kinds"][row]:
                raise ValueError(f"clip {index}: drew kinds {kinds} but the cache holds {info['mask_kinds'][row]}; "
                                 "this cache was made by other code or options")
            spec = ToyClipSpec.from_dict(entry["spec"])
            for mask, kind in zip(masks[:, 0], kinds):  # (F, H, W)
                tally = counts.setdefault(kind, [0, 0])
                tally[0] += 1
                tally[1] += hides_object(mask, spec, entry["seed"])
    summary = {kind: dict(masks=n, object_hidden_rest_kept=round(hidden / n, 3))
               for kind, (n, hidden) in sorted(counts.items())}
    n, hidden = (sum(t[i] for t in counts.values()) for i in (0, 1))
    summary["all kinds"] = dict(masks=n, object_hidden_rest_kept=round(hidden / n, 3))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
