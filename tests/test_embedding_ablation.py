"""Tests for cogfun.training.embedding_ablation: the positional-embedding resize ablation at tiny size."""

import math

import pytest

from cogfun.models.positional_embeddings import POS_EMBED_MODES
from cogfun.training.embedding_ablation import (
    EmbeddingAblationConfig,
    build_evaluation_set,
    evaluation_loss,
    plot_ablation,
    render_clips,
    run_embedding_ablation,
    sample_resolution,
    summarize,
    summary_markdown,
    train_at_sample_grid,
)

#: A few steps on a handful of 64x64x5 clips: seconds on one thread.
TINY = dict(num_frames=5, train_clips=4, eval_clips=2, steps=2, batch_size=2, eval_timesteps=(300, 800),
            unseen_height=64, unseen_width=96, num_threads=1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def result():
    return run_embedding_ablation(EmbeddingAblationConfig(**TINY), seeds=(0, 1, 2), progress=False)


def test_table_has_one_row_per_seed_mode_and_resolution(result):
    assert len(result.table) == 3 * len(POS_EMBED_MODES) * 2
    assert set(result.table[0]) == {"seed", "mode", "resolution", "height", "width", "split", "loss"}
    assert result.trained_size == (64, 64) and result.unseen_size == (64, 96)  # tiny: 8 x 8 latents
    assert {(r["split"], r["resolution"]) for r in result.table} == {("trained", "64x64"), ("unseen", "64x96")}
    assert sorted({r["seed"] for r in result.table}) == [0, 1, 2]
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in result.table)
    assert {k: len(v) for k, v in result.train_losses.items()} == {0: 2, 1: 2, 2: 2}
    assert result.config["steps"] == 2


def test_modes_coincide_at_the_trained_grid_and_differ_at_the_unseen_one(result):
    for seed in (0, 1, 2):
        trained = [r["loss"] for r in result.table if r["seed"] == seed and r["split"] == "trained"]
        unseen = {r["mode"]: r["loss"] for r in result.table if r["seed"] == seed and r["split"] == "unseen"}
        assert max(trained) - min(trained) < 1e-6  # one model, four modes, the same table at the sample grid
        assert abs(unseen["truncate"] - unseen["interpolate"]) > 1e-6
        assert abs(unseen["extrapolate"] - unseen["interpolate"]) > 1e-6
    # seeds differ (initialisation, batch order and draws), so the standard error is not zero
    by_seed = [r["loss"] for r in result.table if r["mode"] == "interpolate" and r["split"] == "trained"]
    assert len(set(by_seed)) == 3


def test_a_seed_reproduces_its_losses_exactly(result):
    again = run_embedding_ablation(EmbeddingAblationConfig(**TINY), seeds=(1,), progress=False)
    first = [r for r in result.table if r["seed"] == 1]
    assert again.table == first
    assert again.train_losses[1] == result.train_losses[1]


def test_summary_means_standard_errors_and_ratios(result):
    summary = result.summary
    assert len(summary) == len(POS_EMBED_MODES) * 2 and all(r["n"] == 3 for r in summary)
    row = next(r for r in summary if r["mode"] == "truncate" and r["split"] == "unseen")
    losses = [r["loss"] for r in result.table if r["mode"] == "truncate" and r["split"] == "unseen"]
    trained = [r["loss"] for r in result.table if r["mode"] == "truncate" and r["split"] == "trained"]
    mean = sum(losses) / 3
    sem = math.sqrt(sum((x - mean) ** 2 for x in losses) / 2) / math.sqrt(3)
    assert row["mean"] == pytest.approx(mean) and row["sem"] == pytest.approx(sem)
    assert row["ratio_mean"] == pytest.approx(sum(u / t for u, t in zip(losses, trained)) / 3)
    reference = [r["loss"] for r in result.table if r["mode"] == "interpolate" and r["split"] == "unseen"]
    assert row["delta_mean"] == pytest.approx(sum(u - i for u, i in zip(losses, reference)) / 3)
    assert row["reference_mode"] == "interpolate"
    same = next(r for r in summary if r["mode"] == "interpolate" and r["split"] == "unseen")
    assert same["delta_mean"] == 0 and same["delta_sem"] == 0
    trained_row = next(r for r in summary if r["mode"] == "truncate" and r["split"] == "trained")
    assert trained_row["ratio_mean"] == pytest.approx(1.0) and trained_row["ratio_sem"] == pytest.approx(0.0)
    text = summary_markdown(summary)
    assert "| truncate |" in text and "64x96 (unseen)" in text and "3 seeds" in text
    assert "unseen − interpolate (paired)" in text


def test_summarize_on_a_table_built_by_hand():
    table = [
        dict(seed=s, mode="interpolate", resolution=res, height=0, width=0, split=split, loss=loss)
        for s, (t, u) in enumerate([(1.0, 2.0), (2.0, 3.0), (3.0, 3.0)])
        for res, split, loss in (("64x64", "trained", t), ("96x96", "unseen", u))
    ]
    summary = summarize(table)
    unseen = next(r for r in summary if r["split"] == "unseen")
    assert unseen["mean"] == pytest.approx(8 / 3)
    assert unseen["sem"] == pytest.approx(math.sqrt(1 / 3) / math.sqrt(3))  # sample std sqrt(1/3)
    assert unseen["ratio_mean"] == pytest.approx((2.0 + 1.5 + 1.0) / 3)
    assert unseen["delta_mean"] == 0.0  # the only mode is the reference
    other = summarize(table, reference_mode="truncate")  # a reference absent from the table
    assert math.isnan(other[1]["delta_mean"])


def test_plot_shows_the_means_with_standard_error_bars(result):
    fig = plot_ablation(result.summary)
    loss_ax, ratio_ax, delta_ax = fig.axes
    from matplotlib.container import BarContainer

    bars, _ = [c for c in loss_ax.containers if isinstance(c, BarContainer)]  # trained, unseen: a bar per mode
    trained = [r for r in result.summary if r["split"] == "trained"]
    assert [b.get_height() for b in bars] == pytest.approx([r["mean"] for r in trained])
    assert [t.get_text() for t in loss_ax.get_xticklabels()] == list(POS_EMBED_MODES)
    ratios = [r["ratio_mean"] for r in result.summary if r["split"] == "unseen"]
    ratio_bars = [c for c in ratio_ax.containers if isinstance(c, BarContainer)][0]
    assert [b.get_height() for b in ratio_bars] == pytest.approx(ratios)
    assert bars.errorbar is not None  # standard errors drawn
    deltas = [r["delta_mean"] for r in result.summary if r["split"] == "unseen"]
    delta_bars = [c for c in delta_ax.containers if isinstance(c, BarContainer)][0]
    assert [b.get_height() for b in delta_bars] == pytest.approx(deltas)


def test_evaluation_loss_restores_the_mode_and_training_checks_the_grid():
    from cogfun.training.embedding_ablation import _frozen_components

    config = EmbeddingAblationConfig(**TINY)
    parts = _frozen_components(config)
    pixels, texts = render_clips(2, 64, 64, 5, seed=3)
    assert pixels.shape == (2, 5, 3, 64, 64) and -1 <= pixels.min() and pixels.max() <= 1
    model, losses = train_at_sample_grid(config, 0, parts, pixels, texts)
    assert sample_resolution(model, parts.vae) == (64, 64) and len(losses) == 2
    evaluation = build_evaluation_set(parts, pixels, texts, (500,), seed=0, max_text_seq_length=16)
    assert evaluation.noisy.shape == (1, 2, 2, 16, 8, 8)  # (T, N, F_lat, C, h, w)
    assert model.config.pos_embed_mode == "interpolate"
    evaluation_loss(model, evaluation, "truncate")
    assert model.config.pos_embed_mode == "interpolate"
    with pytest.raises(ValueError, match="sample grid"):
        train_at_sample_grid(config, 0, parts, render_clips(2, 64, 96, 5, seed=3)[0], texts)


@pytest.mark.parametrize("overrides, match", [
    (dict(num_frames=8), "4k\\+1"),
    (dict(unseen_height=100), "multiples of 16"),
    (dict(modes=("interpolate", "bilinear")), "subset"),
    (dict(batch_size=8, train_clips=4), "batch_size"),
])
def test_bad_configs_say_what_to_do(overrides, match):
    with pytest.raises(ValueError, match=match):
        EmbeddingAblationConfig(**{**TINY, **overrides})


def test_unseen_equal_to_trained_is_refused():
    with pytest.raises(ValueError, match="unseen resolution"):
        run_embedding_ablation(EmbeddingAblationConfig(**{**TINY, "unseen_width": 64}), seeds=(0,), progress=False)


def test_a_pretrained_model_is_scored_without_training_one_draw_per_seed(tmp_path):
    """``pretrained``: the folder's own transformer, no training; each seed another evaluation draw, paired."""
    import torch

    from cogfun.models.transformer import CogVideoXFunTransformer3DModel
    from cogfun.pipelines.components import write_initial_model
    from cogfun.training.embedding_ablation import _frozen_components

    folder = write_initial_model(tmp_path / "model", "tiny")
    config = EmbeddingAblationConfig(**{**TINY, "pretrained": str(folder)})
    result = run_embedding_ablation(config, seeds=(0, 1, 2), progress=False)
    assert result.train_losses == {} and result.config["pretrained"] == str(folder)
    assert len(result.table) == 3 * len(POS_EMBED_MODES) * 2
    for seed in (0, 1, 2):
        trained = [r["loss"] for r in result.table if r["seed"] == seed and r["split"] == "trained"]
        assert max(trained) - min(trained) < 1e-6  # the same model at its sample grid under every mode
    by_seed = [r["loss"] for r in result.table if r["mode"] == "interpolate" and r["split"] == "unseen"]
    assert len(set(by_seed)) == 3  # another draw of clips, masks and noise per seed

    # the very model of the folder, scored on the draw eval_seed + seed
    model = CogVideoXFunTransformer3DModel.from_pretrained(folder / "transformer")
    parts = _frozen_components(config)
    pixels, texts = render_clips(TINY["eval_clips"], 64, 96, TINY["num_frames"], config.eval_seed + 2, held_out=True)
    evaluation = build_evaluation_set(parts, pixels, texts, TINY["eval_timesteps"], config.eval_seed + 2, 16)
    expected = evaluation_loss(model, evaluation, "truncate")
    (row,) = [r for r in result.table if (r["seed"], r["mode"], r["split"]) == (2, "truncate", "unseen")]
    assert row["loss"] == pytest.approx(expected, rel=1e-6)
    assert torch.equal(parts.transformer.patch_embed.proj.weight, model.patch_embed.proj.weight)


def test_a_pretrained_folder_that_is_not_a_model_is_named(tmp_path):
    with pytest.raises(ValueError, match="not a model folder"):
        run_embedding_ablation(EmbeddingAblationConfig(**{**TINY, "pretrained": str(tmp_path)}), seeds=(0,),
                               progress=False)
