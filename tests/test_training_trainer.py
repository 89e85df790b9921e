"""Tests for cogfun.training.trainer: a short run, an overfit run whose loss falls, LoRA, validation."""

import json
import math

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from cogfun.data.toy import write_toy_dataset
from cogfun.models.presets import build_transformer
from cogfun.training.config import TransformerTrainConfig, load_config
from cogfun.training.dataset import collate
from cogfun.training.loss import PromptCache, encode_clean_latents, v_prediction_loss
from cogfun.training.trainer import build_components, stage_data, train


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _config(tmp_path, **overrides):
    """Tiny presets on 32x32x9 toy clips (3 latent frames x 2 x 2 patches = 12 tokens)."""
    values = dict(
        name="t", output_dir=str(tmp_path / "runs"), metadata=str(tmp_path / "data" / "metadata.json"),
        stages=((0, 12),), base_sizes=(32,), max_frames=9, num_ratios=3, min_ratio=0.5, max_ratio=2.0,
        batch_size=2, max_steps=6, checkpointing_steps=3, learning_rate=1e-3, cpu=True, num_threads=1,
    )
    values.update(overrides)
    return TransformerTrainConfig(**values)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    write_toy_dataset(root / "data", 4, sizes=((32, 32, 9),), seed=0)
    return root


def test_six_step_run_writes_metrics_checkpoints_and_a_model_folder(data, tmp_path):
    calls = []
    config = _config(data, output_dir=str(tmp_path), validation_steps=3)
    run_dir = train(config, validation_hook=lambda step, parts, folder: calls.append((step, folder)))
    assert run_dir.parent == tmp_path / "t"
    assert load_config(run_dir / "config.yaml") == config

    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in records)
    assert {"step", "loss", "lr", "tokens", "bucket", "seconds"} <= set(records[0])
    assert records[0]["tokens"] == 2 * 12 and records[0]["bucket"] == "32x32x9"
    assert records[0]["lr"] == 1e-3
    assert calls == [(3, run_dir), (6, run_dir)]

    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert checkpoints == ["checkpoint-000003", "checkpoint-000006"]
    state = json.loads((run_dir / "checkpoints" / "checkpoint-000006" / "training_state.json").read_text())
    assert state["global_step"] == 6 and state["sampler"]["batches_yielded"] in (1, 2)

    from cogfun.pipelines import CogVideoXFunPipeline

    pipe = CogVideoXFunPipeline.from_pretrained(run_dir / "model")
    weights = run_dir / "checkpoints" / "checkpoint-000006" / "transformer" / "diffusion_pytorch_model.safetensors"
    trained = load_file(weights)
    for name, p in pipe.transformer.state_dict().items():
        assert torch.equal(p, trained[name])
    init = build_transformer("tiny", meta=False, seed=0).state_dict()
    assert not torch.equal(init["norm_out.linear.weight"], trained["norm_out.linear.weight"])
    assert all(torch.equal(init[k], p) for k, p in build_transformer("tiny", meta=False, seed=0).state_dict().items())
    out = pipe("a red circle", num_frames=5, height=32, width=32, num_inference_steps=2,
               generator=torch.Generator().manual_seed(0), output_type="np")
    assert out.frames.shape == (1, 5, 32, 32, 3)


def test_overfit_one_batch_loss_falls(data, tmp_path):
    # Text-to-video only (mask kind "all", inpaint latents always zero) and mode latents: the
    # batch of 4 clips is the same at every step, only t and the noise change.
    only_all = (0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    config = _config(data, output_dir=str(tmp_path), max_steps=20, checkpointing_steps=20, batch_size=4,
                     text_dropout=0.0, mask_probabilities=only_all, t2v_zero_prob=1.0, latent_sampling="mode",
                     random_clip_start=False, learning_rate=2e-3, max_grad_norm=1.0)
    run_dir = train(config)
    components = build_components(config, run_dir / "components", save=False)
    dataset, _ = stage_data(config, 0, 12, 0, 1)
    batch = collate([dataset[(i, 0)] for i in range(4)])
    video = batch["pixel_values"].permute(0, 2, 1, 3, 4)  # (B, 3, F, H, W)
    latents = encode_clean_latents(components.vae, video, torch.Generator(), "mode")  # (4, 3, 16, 4, 4)
    text = PromptCache(components.tokenizer, components.text_encoder, 16)(batch["text"])
    inpaint = torch.zeros(4, 3, 17, 4, 4)
    from cogfun.models.transformer import CogVideoXFunTransformer3DModel

    trained = CogVideoXFunTransformer3DModel.from_pretrained(run_dir / "model" / "transformer").eval()
    initial = components.transformer.eval()

    def mean_loss(model):  # the same 16 (t, noise) draws for both models
        with torch.no_grad():
            return sum(
                float(v_prediction_loss(
                    model, components.scheduler, latents, text, inpaint, torch.Generator().manual_seed(s)
                )[0])
                for s in range(16)
            ) / 16

    before, after = mean_loss(initial), mean_loss(trained)
    assert after < 0.8 * before, (before, after)
    losses = [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert sum(losses[-5:]) < sum(losses[:5])


def test_lora_trains_only_adapters(data, tmp_path):
    config = _config(data, output_dir=str(tmp_path), lora=True, lora_rank=64, lora_alpha=32, max_steps=3,
                     learning_rate=1e-2, max_grad_norm=1.0, lora_target_modules="qkv-ff")
    run_dir = train(config)
    checkpoint = run_dir / "checkpoints" / "checkpoint-000003"
    adapter = load_file(checkpoint / "transformer_lora.safetensors")
    assert adapter and all("lora_A" in k or "lora_B" in k for k in adapter)
    assert {k.split(".lora_")[0].split("attn1.")[-1].split("ff.")[-1] for k in adapter} == {
        "to_q", "to_k", "to_v", "net.0.proj", "net.2"
    }
    assert not (checkpoint / "transformer").exists()  # no full weights for a LoRA run
    exported = run_dir / "lora" / "pytorch_lora_weights.safetensors"
    with safe_open(exported, framework="pt") as f:  # alpha travels with the file (diffusers restores it)
        meta = json.loads(f.metadata()["lora_adapter_metadata"])
    assert (meta["transformer.r"], meta["transformer.lora_alpha"]) == (64, 32)

    init = build_transformer("tiny", meta=False, seed=0).state_dict()
    fused = load_file(run_dir / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert set(fused) == set(init)  # LoRA fused away: the plain layout
    for name, p in init.items():
        targets = ("to_q.", "to_k.", "to_v.", "ff.net.0.proj.", "ff.net.2.")
        targeted = any(t in name for t in targets) and name.endswith("weight")
        assert torch.equal(p, fused[name]) != targeted, name  # only adapted weights moved


def test_validation_videos_with_the_pipeline(data, tmp_path):
    config = _config(data, output_dir=str(tmp_path), max_steps=1, validation_steps=1, validation_num_frames=5,
                     validation_height=32, validation_width=32, validation_inference_steps=2)
    run_dir = train(config)
    assert (run_dir / "validation" / "step-000001" / "00.mp4").stat().st_size > 0
    from cogfun.data.video_io import read_video

    frames, _ = read_video(run_dir / "validation" / "step-000001" / "00.mp4")
    assert frames.shape == (5, 32, 32, 3)


def test_errors_name_the_fix(data, tmp_path):
    with pytest.raises(ValueError, match="no bucket holds a full batch"):
        train(_config(data, output_dir=str(tmp_path), batch_size=5))
    with pytest.raises(ValueError, match="metadata is empty"):
        train(_config(data, output_dir=str(tmp_path), metadata=""))
    with pytest.raises(ValueError, match="set text_encoder_width to 32"):
        train(_config(data, output_dir=str(tmp_path), text_encoder_width=16))


def test_gradient_checkpointing_gives_the_same_losses(data, tmp_path):
    def losses(**overrides):
        run = train(_config(data, output_dir=str(tmp_path), max_steps=2, **overrides))
        return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]

    plain, checkpointed = losses(), losses(gradient_checkpointing=True)
    assert plain == pytest.approx(checkpointed, abs=1e-6)


def test_fine_tune_from_a_released_layout_folder(data, tmp_path):
    first = train(_config(data, output_dir=str(tmp_path), run_name="first", max_steps=2))
    second = train(
        _config(data, output_dir=str(tmp_path), run_name="second", max_steps=1, pretrained=str(first / "model"))
    )
    assert not (second / "components").exists()  # every part comes from the folder
    records = [json.loads(line) for line in (second / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and math.isfinite(records[0]["loss"])
    start = load_file(first / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    end = load_file(second / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert set(start) == set(end) and not all(torch.equal(start[k], end[k]) for k in start)
    with pytest.raises(ValueError, match="not a model folder in the released layout"):
        train(_config(data, output_dir=str(tmp_path), pretrained=str(tmp_path)))


def test_dataloader_workers_change_nothing(data, tmp_path):
    def run(workers):
        config = _config(data, output_dir=str(tmp_path), max_steps=3, checkpointing_steps=2, num_workers=workers)
        run_dir = train(config)
        state = json.loads((run_dir / "checkpoints" / "checkpoint-000002" / "training_state.json").read_text())
        return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()], state

    # Workers start from a fork server, not a fork of this process (which has decoded video: a forked worker
    # inherited FFmpeg's swscale thread pool without its threads and hung in CI).
    from cogfun.training.dataset import worker_context

    assert worker_context(0) is None and worker_context(2) == "forkserver"
    (plain, plain_state), (workers, workers_state) = run(0), run(2)
    assert plain == workers
    # the checkpoint holds the position of the batches consumed, not of those prefetched
    assert plain_state["sampler"] == workers_state["sampler"] == {"epoch": 0, "batches_yielded": 2, "seed": 0}
