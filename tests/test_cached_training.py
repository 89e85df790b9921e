"""Training on a latent cache with inpaint conditionings: the cache stores what a training step would compute,
the loss picks text-to-video or a cached mask with the run's generator, and a run resumes exactly."""

import json

import pytest
import torch

from cogfun.data.latent_cache import LatentCacheDataset, cache_latents
from cogfun.data.toy import write_toy_dataset
from cogfun.models.presets import build_transformer
from cogfun.pipelines.components import write_initial_model
from cogfun.training.config import TransformerTrainConfig
from cogfun.training.loss import build_training_scheduler, cached_training_loss
from cogfun.training.random_masks import MASK_KINDS
from cogfun.training.dataset import collate_cached
from cogfun.training.trainer import train

PROBABILITIES = [0.0] * len(MASK_KINDS)
PROBABILITIES[MASK_KINDS.index("first_frames")] = 0.6
PROBABILITIES[MASK_KINDS.index("all")] = 0.4


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """Six lossless 32x32x9 toy clips, a tiny initial model and its cache with 2 masks per clip."""
    root = tmp_path_factory.mktemp("cached")
    metadata = write_toy_dataset(root / "data", 6, sizes=((32, 32, 9),), seed=1, ext=".png", photos=(),
                                 kinds=("shape",))
    init = write_initial_model(root / "init", "tiny")
    summary = cache_latents(metadata, root / "cache", model=init, budget=64, base_size=[32], max_frames=9,
                            store_std=True, inpaint_masks=2, mask_probabilities=PROBABILITIES, progress=False)
    assert summary["buckets"] == {"32x32x9": 6}
    return root, init


def test_png_frame_folders_round_trip_exactly(tmp_path):
    from cogfun.data.toy import ToyClipSpec, render_clip
    from cogfun.data.video_io import frames_to_uint8, read_video, write_frames

    frames = render_clip(ToyClipSpec("shape", "left", "grey", "circle", "red"), 32, 48, 5, seed=2)
    write_frames(tmp_path / "clip", frames)
    back, _ = read_video(tmp_path / "clip")
    assert back.shape == (5, 32, 48, 3)
    assert (frames_to_uint8(back) == frames_to_uint8(frames)).all()
    with pytest.raises(ValueError, match="already holds images"):
        write_frames(tmp_path / "clip", frames)


def test_cache_stores_k_conditionings_with_their_kinds(cached):
    root, _ = cached
    data = LatentCacheDataset(root / "cache")
    assert data.has_inpaint and data.empty_prompt_embeds is not None
    item = data[0]
    assert item["inpaint"].shape == (2, 3, 17, 4, 4) and item["inpaint_full"].shape == (2,)
    index = json.loads(next((root / "cache").glob("*/shard-00000.json")).read_text())
    kinds = [k for row in index["mask_kinds"] for k in row]
    assert set(kinds) <= {"first_frames", "all"} and len(kinds) == 12
    for row, full in zip(index["mask_kinds"], [data[i]["inpaint_full"] for i in range(6)]):
        assert [k == "all" for k in row] == full.tolist()
    # a kept-first-frames mask says "known" on latent frame 0 (mask channel = scaling factor there)
    for i in range(6):
        for k, kind in enumerate(index["mask_kinds"][i]):
            channel = data[i]["inpaint"][k, :, 0]  # (F_lat, h, w)
            if kind == "first_frames":
                assert torch.all(channel[0] > 0) and torch.all(channel[-1] == 0)
            else:
                assert torch.count_nonzero(channel) == 0


def test_the_cached_pixel_masks_can_be_drawn_again_from_the_seed_and_index(cached):
    from cogfun.data.latent_cache import draw_cached_masks

    root, _ = cached
    index = json.loads(next((root / "cache").glob("*/shard-00000.json")).read_text())
    data = LatentCacheDataset(root / "cache")
    for row, clip in enumerate(index["indices"]):
        masks, kinds, _ = draw_cached_masks(2, 9, 32, 32, PROBABILITIES, (0, clip))
        assert kinds == index["mask_kinds"][row]
        for k, kind in enumerate(kinds):  # kept frames of the pixel mask = latent frames the channel keeps
            kept_first_frame = bool((masks[k, 0, 0] < 0.5).all())
            assert kept_first_frame == (kind == "first_frames")
            assert bool((data[row]["inpaint"][k, 0, 0] > 0).all()) == kept_first_frame


def test_cached_loss_draws_text_to_video_and_masks_at_the_given_rates(cached):
    root, _ = cached
    data = LatentCacheDataset(root / "cache")
    batch = collate_cached([data[i] for i in range(6)])
    transformer = build_transformer("tiny", meta=False, seed=0).eval()
    scheduler = build_training_scheduler()
    g = torch.Generator().manual_seed(0)
    zeroed, total = 0, 0
    for _ in range(40):
        out = cached_training_loss(batch, transformer, scheduler, data.empty_prompt_embeds, g, t2v_prob=0.5,
                                   t2v_zero_prob=1.0)
        assert torch.isfinite(out.loss)
        zeroed += int(out.inpaint_zeroed.sum())
        total += 6
    # zeroed = text-to-video (0.5) + cached "all" masks of the other half (0.4 x 0.5, always zeroed here)
    assert 0.6 < zeroed / total < 0.8
    with pytest.raises(ValueError, match="inpaint-masks"):
        cached_training_loss({k: v for k, v in batch.items() if k != "inpaint"}, transformer, scheduler,
                             data.empty_prompt_embeds, g)


def test_training_on_the_cache_learns_and_resumes_exactly(cached, tmp_path):
    root, init = cached
    common = dict(name="cached", output_dir=str(tmp_path), pretrained=str(init), latent_cache=str(root / "cache"),
                  batch_size=3, learning_rate=1e-3, t2v_prob=0.3, checkpointing_steps=3, num_threads=1, cpu=True)
    whole = train(TransformerTrainConfig(run_name="whole", max_steps=6, **common))
    part = train(TransformerTrainConfig(run_name="part", max_steps=3, **common))
    part = train(TransformerTrainConfig(run_name="part", max_steps=6, **common), resume=True)
    rows = [json.loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines()]
    again = [json.loads(line) for line in (part / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows] == [r["loss"] for r in again]
    assert rows[0]["bucket"] == "32x32x9" and rows[0]["tokens"] == 3 * 3 * 2 * 2
    first = json.loads((whole / "final_state_rank0.json").read_text())["sha256"]
    assert first == json.loads((part / "final_state_rank0.json").read_text())["sha256"]
    assert (whole / "model" / "transformer" / "config.json").is_file()


def test_a_cache_without_conditionings_is_refused_with_the_fix(cached, tmp_path):
    root, init = cached
    plain = tmp_path / "plain"
    cache_latents(root / "data" / "metadata.json", plain, model=init, budget=64, base_size=[32], max_frames=9,
                  progress=False)
    config = TransformerTrainConfig(name="x", output_dir=str(tmp_path), pretrained=str(init), latent_cache=str(plain),
                                    batch_size=2, max_steps=1, num_threads=1, cpu=True)
    with pytest.raises(ValueError, match="--inpaint-masks"):
        train(config)


def test_the_trainer_weighs_object_cells_when_asked(cached, tmp_path):
    root, init = cached
    common = dict(name="weights", output_dir=str(tmp_path), pretrained=str(init), latent_cache=str(root / "cache"),
                  batch_size=3, learning_rate=1e-3, t2v_prob=0.3, max_steps=2, checkpointing_steps=2, num_threads=1,
                  cpu=True)

    def losses(run_name, **overrides):
        run = train(TransformerTrainConfig(run_name=run_name, **common, **overrides))
        return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]

    plain = losses("plain")
    # No cell is that far from its frame's median: every weight is 1, the reference's loss, to rounding.
    none_marked = losses("none-marked", object_weight=5.0, object_threshold=1e6)
    # The tiny random VAE's posterior is wide (std ~1.2): a sampled cell lies ~1.2 from its frame's median, so 1.2 marks
    # about half of the cells.
    weighted = losses("weighted", object_weight=5.0, object_threshold=1.2)
    assert none_marked == pytest.approx(plain, rel=1e-6)
    assert abs(weighted[0] - plain[0]) > 1e-4 * plain[0]  # same draws, other weights: another loss
