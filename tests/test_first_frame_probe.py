"""experiments/toy-model/first_frame_probe.py: the transformer's error on generated frames under four conditionings."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cogfun.models.presets import build_scheduler, build_transformer
from cogfun.pipelines import CogVideoXFunPipeline
from cogfun.pipelines.components import build_components

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "toy-model" / "first_frame_probe.py"
spec = importlib.util.spec_from_file_location("first_frame_probe", SCRIPT)
first_frame_probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(first_frame_probe)


def _write_cache(root: Path, n: int = 5, frames: int = 3) -> dict:
    """One shard of a 4x4-latent bucket: mask kinds per clip, only some with a first_frames mask."""
    g = torch.Generator().manual_seed(0)
    tensors = dict(latents=torch.randn(n, frames, 16, 4, 4, generator=g),
                   inpaint=torch.randn(n, 2, frames, 17, 4, 4, generator=g),
                   prompt_embeds=torch.randn(n, 16, 32, generator=g))
    kinds = [["box", "first_frames"], ["middle", "box"], ["first_frames", "ellipse"], ["box", "box"],
             ["circle", "first_frames"]][:n]
    (root / "32x32x9").mkdir(parents=True)
    save_file(tensors, str(root / "32x32x9" / "shard-00000.safetensors"))
    (root / "32x32x9" / "shard-00000.json").write_text(json.dumps(dict(mask_kinds=kinds, texts=[""] * n)))
    return tensors


def test_samples_are_the_first_frames_masks_of_the_cache(tmp_path):
    tensors = _write_cache(tmp_path)
    batch = first_frame_probe.first_frame_samples(tmp_path, "32x32x9", samples=10)
    assert batch["latents"].shape == (3, 3, 16, 4, 4) and batch["inpaint"].shape == (3, 3, 17, 4, 4)
    assert torch.equal(batch["inpaint"][0], tensors["inpaint"][0, 1])  # clip 0, its second mask
    assert torch.equal(batch["inpaint"][1], tensors["inpaint"][2, 0])  # clip 2, its first mask
    assert torch.equal(batch["latents"][2], tensors["latents"][4])
    assert first_frame_probe.first_frame_samples(tmp_path, "32x32x9", samples=2)["latents"].shape[0] == 2
    with pytest.raises(ValueError, match="buckets of"):
        first_frame_probe.first_frame_samples(tmp_path, "64x64x17", samples=4)


def test_conditionings_move_only_what_they_name():
    inpaint = torch.randn(3, 2, 17, 4, 6)
    conds = first_frame_probe.conditionings(inpaint, roll=2)
    assert torch.equal(conds["rolled"][:, 1], inpaint[:, 1])  # later frames untouched
    assert torch.equal(conds["rolled"][:, 0, :, :, 2:], inpaint[:, 0, :, :, :-2])  # frame 0 moved right by 2
    assert torch.equal(conds["other"][1], inpaint[0]) and not conds["none"].any()


def test_probe_errors_per_timestep_and_condition():
    transformer = build_transformer("tiny", seed=0)
    scheduler = build_scheduler("ddim")
    g = torch.Generator().manual_seed(1)
    latents, inpaint = torch.randn(3, 3, 16, 4, 4, generator=g), torch.randn(3, 3, 17, 4, 4, generator=g)
    embeds = torch.randn(3, 16, 32, generator=g)
    result = first_frame_probe.probe(transformer, scheduler, latents, inpaint, embeds, timesteps=(999, 10), roll=2)
    assert list(result) == [999, 10] and set(result[999]) == set(first_frame_probe.CONDITIONS)
    assert all(v > 0 for row in result.values() for v in row.values())
    assert result[999]["own"] != result[999]["none"] and result[999]["own"] != result[999]["other"]
    # Rolling by 0 changes nothing: "rolled" is then "own" to the bit.
    same = first_frame_probe.probe(transformer, scheduler, latents, inpaint, embeds, timesteps=(500,), roll=0)
    assert same[500]["rolled"] == same[500]["own"]
    assert "| 999 |" in first_frame_probe.markdown(result, 2)
    with pytest.raises(ValueError, match="2 or more latent frames"):
        first_frame_probe.probe(transformer, scheduler, latents[:, :1], inpaint[:, :1], embeds)


def test_main_writes_the_record(tmp_path):
    model = tmp_path / "model"
    CogVideoXFunPipeline(**build_components("tiny")).save_pretrained(model)
    _write_cache(tmp_path / "cache")
    out = tmp_path / "probe.json"
    record = first_frame_probe.main([str(model), str(tmp_path / "cache"), "--bucket", "32x32x9", "--samples", "3",
                                     "--timesteps", "999", "--out", str(out)])
    assert record["samples"] == 3 and json.loads(out.read_text())["mse"]["999"]["own"] == record["mse"][999]["own"]
