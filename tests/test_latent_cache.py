"""Tests for cogfun.data.latent_cache: shards per bucket, exact values, resume, dataset, sampler."""

import argparse
import json
import shutil

import pytest
import torch
from torch.utils.data import DataLoader

from cogfun.buckets import BucketBatchSampler, num_tokens
from cogfun.data.latent_cache import (
    LatentCacheDataset,
    add_cache_parser,
    cache_latents,
    encode_prompts,
    load_encoders,
)
from cogfun.data.toy import write_toy_dataset
from cogfun.data.video_io import frames_to_tensor, read_video
from cogfun.pipelines import CogVideoXFunPipeline
from cogfun.pipelines.components import build_components

# Buckets around 64x64 with a budget of 64x64x49 tokens, at most 9 frames: the toy clips below
# are 64x64 and 48x80 (both bucket shapes, so no resize) and 64x64x13 (cut to 9 frames).
BUDGET = num_tokens(64, 64, 49)  # 208
SIZES = ((64, 64, 9), (48, 80, 9), (64, 64, 13))
ARGS = ["--model", "tiny", "--budget", str(BUDGET), "--base-size", "64", "--max-frames", "9",
        "--shard-size", "2", "--store-std", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Five toy clips cached through the command line (the tiny preset, random weights)."""
    root = tmp_path_factory.mktemp("cache")
    metadata = write_toy_dataset(root / "data", 5, sizes=SIZES, seed=3)
    parser = argparse.ArgumentParser()
    add_cache_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["cache", str(metadata), str(root / "out"), *ARGS])
    assert args.func(args) == 0
    return metadata, root / "out"


def _direct_encode(vae, path, num_frames):
    """What the pipeline does to a clip: mode of the posterior times the scaling factor."""
    frames, _ = read_video(path, max_frames=num_frames)
    x = frames_to_tensor(frames).permute(1, 0, 2, 3)[None]  # (1, C, F, H, W)
    with torch.no_grad():
        dist = vae.encode(x).latent_dist
    sf = vae.config.scaling_factor
    return (dist.mode()[0].permute(1, 0, 2, 3) * sf,  # (F_lat, C, h, w)
            dist.std[0].permute(1, 0, 2, 3) * sf)


def test_shards_per_bucket_with_the_right_shapes(cache):
    metadata, out = cache
    from safetensors.torch import load_file

    # clips 0, 2, 3 are 64x64 (2 is 13 frames long), 1 and 4 are 48x80
    expected = {"48x80x9/shard-00000": 2, "64x64x9/shard-00000": 2, "64x64x9/shard-00001": 1}
    found = sorted(p.relative_to(out).with_suffix("").as_posix() for p in out.glob("*/*.json"))
    assert found == sorted(expected)
    for name, n in expected.items():
        tensors = load_file(str(out / f"{name}.safetensors"))
        h, w = (6, 10) if name.startswith("48x80") else (8, 8)
        assert tensors["latents"].shape == (n, 3, 16, h, w)  # 9 frames -> 3 latent frames
        assert tensors["latents_std"].shape == (n, 3, 16, h, w)
        assert tensors["prompt_embeds"].shape == (n, 16, 32)  # tiny: L = 16, D = 32
        index = json.loads((out / f"{name}.json").read_text())
        assert len(index["texts"]) == len(index["file_paths"]) == n
    assert json.loads((out / "48x80x9" / "shard-00000.json").read_text())["indices"] == [1, 4]
    manifest = json.loads((out / "cache.json").read_text())
    assert manifest["buckets"] == {"48x80x9": 2, "64x64x9": 3} and manifest["shards"] == 3


def test_dataset_returns_exactly_the_direct_encodings(cache):
    metadata, out = cache
    entries = json.loads(metadata.read_text())
    parts = build_components("tiny", seed=0)
    vae = parts["vae"].eval()
    pipe = CogVideoXFunPipeline(**parts)
    dataset = LatentCacheDataset(out)
    assert len(dataset) == 5
    assert dataset.bucket_of == [(48, 80, 9)] * 2 + [(64, 64, 9)] * 3
    for i in range(len(dataset)):
        item = dataset[i]
        entry = entries[item["index"]]
        assert item["text"] == entry["text"] and item["file_path"] == entry["file_path"]
        mode, std = _direct_encode(vae, metadata.parent / entry["file_path"], 9)
        torch.testing.assert_close(item["latents"], mode, atol=1e-5, rtol=0)
        torch.testing.assert_close(item["latents_std"], std, atol=1e-5, rtol=0)
        with torch.no_grad():
            embeds, _ = pipe.encode_prompt(entry["text"], do_classifier_free_guidance=False)
        torch.testing.assert_close(item["prompt_embeds"], embeds[0], atol=1e-5, rtol=0)
    with torch.no_grad():
        empty, _ = pipe.encode_prompt("", do_classifier_free_guidance=False)
    torch.testing.assert_close(dataset.empty_prompt_embeds, empty[0], atol=1e-5, rtol=0)


def test_sampled_latents_follow_the_posterior(cache):
    _, out = cache
    item = LatentCacheDataset(out)[2]
    torch.manual_seed(0)
    draws = LatentCacheDataset(out, sample=True)
    z = (draws[2]["latents"] - item["latents"]) / item["latents_std"]  # should be N(0, 1)
    assert abs(z.mean().item()) < 0.1 and z.std().item() == pytest.approx(1.0, abs=0.1)
    assert not torch.equal(draws[2]["latents"], draws[2]["latents"])  # fresh per read


def test_bucket_batches_stack_one_shape(cache):
    _, out = cache
    dataset = LatentCacheDataset(out)
    sampler = BucketBatchSampler(dataset.bucket_of, batch_size=2, drop_last=False, seed=0)
    seen = []
    for batch in DataLoader(dataset, batch_sampler=sampler):
        assert batch["latents"].shape[1:] in {(3, 16, 6, 10), (3, 16, 8, 8)}
        assert batch["prompt_embeds"].shape[1:] == (16, 32)
        seen += batch["index"].tolist()
    assert sorted(seen) == [0, 1, 2, 3, 4]


def test_resume_skips_done_shards(cache, tmp_path):
    metadata, out = cache
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    # a run killed before it finished shard 64x64x9/00001: its index file is missing
    (copy / "64x64x9" / "shard-00001.json").unlink()
    kept = {p: p.stat().st_mtime_ns for p in copy.glob("*/shard-*")}
    with open(copy / "options.json") as f:
        options = json.load(f)
    summary = cache_latents(metadata, copy, model="tiny", budget=BUDGET, base_size=64,
                            max_frames=9, shard_size=2, store_std=True, device="cpu",
                            progress=False)
    assert summary["shards_written"] == 1 and summary["shards_skipped"] == 2
    for path, mtime in kept.items():
        if path.name != "shard-00001.safetensors" or path.parent.name != "64x64x9":
            assert path.stat().st_mtime_ns == mtime, path  # untouched
    torch.testing.assert_close(LatentCacheDataset(copy)[4]["latents"],
                               LatentCacheDataset(out)[4]["latents"], atol=0, rtol=0)
    assert json.loads((copy / "options.json").read_text()) == options
    with pytest.raises(ValueError, match="other options"):
        cache_latents(metadata, copy, model="tiny", budget=BUDGET, base_size=64, max_frames=9,
                      shard_size=4, device="cpu", progress=False)


def test_pipeline_folder_loads_only_the_encoders(tmp_path):
    CogVideoXFunPipeline(**build_components("tiny", seed=0)).save_pretrained(tmp_path / "model")
    from_folder = load_encoders(tmp_path / "model")
    from_preset = load_encoders("tiny")
    assert from_folder.max_text_length == from_preset.max_text_length == 16
    texts = ["a red circle moving left on a grey background", ""]
    torch.testing.assert_close(encode_prompts(from_folder, texts),
                               encode_prompts(from_preset, texts), atol=0, rtol=0)
    with pytest.raises(ValueError, match="neither a preset"):
        load_encoders(tmp_path / "missing")
    with pytest.raises(ValueError, match="no cache shards"):
        LatentCacheDataset(tmp_path / "nothing")
