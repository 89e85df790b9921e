"""Tests for cogfun.training.vae_trainer: crops, the KL term, an overfit run, resume, scaling factor."""

import json

import pytest
import torch

from cogfun.data.toy import write_toy_dataset
from cogfun.models.presets import build_vae
from cogfun.training.config import TransformerTrainConfig, VAETrainConfig
from cogfun.training.trainer import train
from cogfun.training.vae_trainer import VAEObjective, VideoCropDataset, foreground_map, kl_per_pixel, latent_std


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae")
    write_toy_dataset(root / "data", 2, sizes=((32, 32, 9),), seed=0, kinds=("shape",))
    write_toy_dataset(root / "wide", 2, sizes=((24, 40, 13),), seed=1)
    return root


def _config(root, **overrides):
    values = dict(name="v", output_dir=str(root / "runs"), metadata=str(root / "data" / "metadata.json"),
                  vae_preset="tiny", crop_frames=9, crop_height=32, crop_width=32, batch_size=2, max_steps=4,
                  checkpointing_steps=2, cpu=True, num_threads=1, calibration_samples=4)
    values.update(overrides)
    return VAETrainConfig(**values)


def test_crops_are_seeded_and_cover_small_clips(data):
    ds = VideoCropDataset(data / "wide" / "metadata.json", 9, 32, 32, seed=0)
    a, b = ds[(0, 3)]["pixel_values"], ds[(0, 3)]["pixel_values"]
    assert a.shape == (9, 3, 32, 32) and torch.equal(a, b)  # 24x40 resized to cover 32x32, then cropped
    assert -1 <= a.min() and a.max() <= 1
    assert any(not torch.equal(a, ds[(0, e)]["pixel_values"]) for e in range(4, 10))  # other epochs, other crops


def test_content_aware_crops_pick_the_busiest_candidate(tmp_path):
    from cogfun.data.toy import ToyClipSpec

    # one small still square in a big grey frame: most random 16x16 crops miss it, the best of 8 rarely does
    spec = ToyClipSpec("shape", "still", "grey", "square", "red", size=0.15, speed=0.5)
    from cogfun.data.toy import render_clip
    from cogfun.data.video_io import write_frames

    write_frames(tmp_path / "clip", render_clip(spec, 64, 64, 5, seed=4))
    (tmp_path / "m.json").write_text(json.dumps([{"file_path": "clip", "text": "x", "type": "video",
                                                   "num_frames": 5}]))
    plain = VideoCropDataset(tmp_path / "m.json", 5, 16, 16, seed=0)
    busy = VideoCropDataset(tmp_path / "m.json", 5, 16, 16, seed=0, candidates=8)
    spread = lambda ds: sum(float(ds[(0, e)]["pixel_values"].std()) for e in range(20)) / 20  # noqa: E731
    assert spread(busy) > 2 * spread(plain)
    assert torch.equal(busy[(0, 3)]["pixel_values"], busy[(0, 3)]["pixel_values"])  # still seeded
    with pytest.raises(ValueError, match="candidates"):
        VideoCropDataset(tmp_path / "m.json", 5, 16, 16, candidates=0)


def test_foreground_weights_mark_pixels_far_from_the_frame_median():
    video = torch.full((1, 3, 2, 8, 8), 0.0)  # grey in [-1, 1]
    video[0, 0, :, 2:4, 2:4] = 1.0  # a red-ish 2x2 patch: distance 0.5 from grey in [0, 1] units
    weight = foreground_map(video, 9.0)
    assert weight.shape == (1, 1, 2, 8, 8)
    assert torch.all(weight[0, 0, :, 2:4, 2:4] == 10.0) and weight.sum() == 2 * (60 + 4 * 10)
    assert foreground_map(video, 0.0) is None
    # the weighted loss is a weighted mean: equal errors everywhere give the unweighted value
    objective = VAEObjective(build_vae("tiny", seed=0), foreground_weight=9.0)
    error = torch.full_like(video, 0.1)
    w = foreground_map(video, 9.0)
    weighted = ((error.abs() + error.pow(2)) * w).mean() / w.mean()
    assert float(weighted) == pytest.approx(0.11)
    assert objective.foreground_weight == 9.0


def test_kl_per_pixel_value():
    mean, logvar = torch.zeros(2, 16, 3, 4, 4), torch.zeros(2, 16, 3, 4, 4)
    assert float(kl_per_pixel(mean, logvar, 100)) == 0.0
    mean[:, 0, 0, 0, 0] = 2.0  # KL of one unit: 0.5 * 2^2 = 2 nats per sample
    assert float(kl_per_pixel(mean, logvar, 100)) == pytest.approx(0.02)


def _recon_l1(vae, video):
    with torch.no_grad():
        return float((vae.decode(vae.encode(video).latent_dist.mode()).sample - video).abs().mean())


def test_overfit_reduces_reconstruction_loss_and_sets_scaling_factor(data, tmp_path):
    config = _config(data, output_dir=str(tmp_path), max_steps=30, checkpointing_steps=30, learning_rate=3e-3)
    run_dir = train(config)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "l1", "mse", "kl", "lr", "seconds"} <= set(records[0]) and len(records) == 30

    from diffusers import AutoencoderKLCogVideoX

    trained = AutoencoderKLCogVideoX.from_pretrained(run_dir / "model" / "vae").eval()
    ds = VideoCropDataset(config.metadata, 9, 32, 32, seed=0)
    video = torch.stack([ds[(i, 0)]["pixel_values"] for i in range(2)]).permute(0, 2, 1, 3, 4)  # (2, 3, 9, 32, 32)
    before, after = _recon_l1(build_vae("tiny", seed=0), video), _recon_l1(trained, video)
    assert after < 0.6 * before, (before, after)
    # scaling_factor = 1 / std of the trained VAE's latents
    assert trained.config.scaling_factor == pytest.approx(1 / latent_std(trained, ds, 4, config.seed), rel=1e-4)

    # a transformer run takes this VAE through vae_path (and keeps a copy in its components/)
    dit = TransformerTrainConfig(
        name="dit", output_dir=str(tmp_path), metadata=config.metadata, vae_path=str(run_dir / "model"),
        stages=((0, 12),), base_sizes=(32,), max_frames=9, num_ratios=1, batch_size=2, max_steps=1, cpu=True,
        num_threads=1,
    )
    dit_run = train(dit)
    copied = AutoencoderKLCogVideoX.from_pretrained(dit_run / "components" / "vae")
    assert copied.config.scaling_factor == trained.config.scaling_factor
    assert (dit_run / "model" / "vae").is_dir()


def test_vae_run_resumes_exactly(data, tmp_path):
    full = train(_config(data, output_dir=str(tmp_path), run_name="full"))
    train(_config(data, output_dir=str(tmp_path), run_name="part", max_steps=2))
    part = train(_config(data, output_dir=str(tmp_path), run_name="part"), resume=True)
    assert (part / "config.resumed-at-000002.yaml").is_file()
    # the 2-step model stays; the resumed run's model goes next to it (never overwritten)
    assert (part / "model" / "vae").is_dir() and (part / "model-000004" / "vae").is_dir()
    assert train(_config(data, output_dir=str(tmp_path), run_name="part"), resume=True) == part  # nothing left
    assert sorted(p.name for p in part.glob("model*")) == ["model", "model-000004"]

    def losses(run):
        return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert losses(part) == losses(full)
    a = json.loads((full / "final_state_rank0.json").read_text())["sha256"]
    b = json.loads((part / "final_state_rank0.json").read_text())["sha256"]
    assert a == b
