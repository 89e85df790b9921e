"""The shipped default model (cogfun/assets/toy-model): loads, generates every mode, and measures as committed.

The metrics are recomputed here by running the model; `eval_quick.json` beside the checkpoint holds the values
the recipe's eval produced, and the test checks the two agree within a tolerance.
"""

import ast
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from cogfun.eval.benchmark import EVAL_SUITES, compare_metrics, evaluate_suite
from cogfun.pipelines.components import DEFAULT_MODEL_DIR, load_pipeline
from cogfun.training.config import load_config
from cogfun.training.dataset import clip_key
from cogfun.training.trainer import stage_plan

ROOT = Path(__file__).resolve().parents[1]

QUICK_SUBSETS = ["subsets=[vae, i2v, start_end, t2v]"]


@pytest.fixture(scope="module")
def pipe():
    assert (DEFAULT_MODEL_DIR / "model_index.json").exists(), "the default toy model is missing from cogfun/assets"
    p = load_pipeline()
    p.set_progress_bar_config(disable=True)
    return p


def test_checkpoint_is_small_safetensors_with_provenance():
    files = [f for f in DEFAULT_MODEL_DIR.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) < 25 * 2**20
    assert not [f for f in files if f.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl")]
    provenance = json.loads((DEFAULT_MODEL_DIR / "provenance.json").read_text())
    assert provenance["recipe"] == "experiments/toy-model/recipe.sh" and provenance["seed"] == 0
    assert len(provenance["commit"]) == 40
    # the recipe's step counts, as its configs (shipped beside the weights) ask
    for part, config in (("vae", "vae.yaml"), ("transformer", "dit.yaml")):
        steps = yaml.safe_load((DEFAULT_MODEL_DIR / config).read_text())["max_steps"]
        assert provenance[part]["steps"] == steps and 0 < provenance[part]["train_minutes"] < 90


def test_recipe_mixes_ratios_and_lengths_in_one_budget_and_never_trains_the_unseen_sizes():
    """The shipped config and the recipe's clip sizes give 17-, 13- and 5-frame buckets of several aspect ratios
    inside one token budget, and no bucket has an eval suite's "unseen" size."""
    config = load_config(DEFAULT_MODEL_DIR / "dit.yaml")
    assert config == load_config(ROOT / "experiments/toy-model/dit.yaml"), "shipped dit.yaml differs from the recipe's"
    assert len(config.stages) == 1
    plan = stage_plan(config, config.stages[0][1])
    recipe = (ROOT / "experiments/toy-model/recipe.sh").read_text()
    sizes = ast.literal_eval(re.search(r"sizes=(\(\(.*?\)\))", recipe).group(1))
    keys = {clip_key(h, w, f, plan) for h, w, f in sizes}
    assert sorted({f for _, _, f in keys}) == [5, 13, 17]
    assert len({round(h / w, 3) for h, w, _ in keys}) >= 3
    trained = {(b.height, b.width) for b in plan}
    for suite in ("full", "quick"):
        assert tuple(EVAL_SUITES[suite].unseen_size) not in trained, f"the {suite} suite's unseen size is a bucket"
    assert (EVAL_SUITES["full"].height, EVAL_SUITES["full"].width) == (None, None)  # the sample size, 64x96: trained
    assert (64, 96) in trained


@pytest.mark.parametrize("mode", ["t2v", "i2v", "start_end", "v2v", "inpaint"])
def test_every_mode_generates_the_right_shape(pipe, mode):
    g = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    kw = dict(num_frames=9, height=64, width=96, num_inference_steps=2, generator=g)
    image = rng.random((64, 96, 3)).astype(np.float32)
    video = rng.random((9, 64, 96, 3)).astype(np.float32)
    prompt = "a green square moving up on a white background"
    if mode == "t2v":
        out = pipe.text_to_video(prompt, **kw)
    elif mode in ("i2v", "start_end"):
        out = pipe.image_to_video(prompt, image, end_image=image[::-1].copy() if mode == "start_end" else None, **kw)
    elif mode == "v2v":
        out = pipe.video_to_video(prompt, video, **{**kw, "num_inference_steps": 4})
    else:
        mask = np.zeros((64, 96), np.float32)
        mask[16:48, 24:72] = 1
        out = pipe.inpaint(prompt, video, mask, **kw)
    assert out.frames.shape == (1, 9, 64, 96, 3)
    assert np.isfinite(out.frames).all()


def test_quick_eval_matches_the_committed_results(pipe):
    committed = json.loads((DEFAULT_MODEL_DIR / "eval_quick.json").read_text())["metrics"]
    measured = evaluate_suite(pipe, "quick", QUICK_SUBSETS)["metrics"]
    assert all(math.isfinite(v) for k, v in measured.items() if k.endswith("psnr"))
    psnr = {k: v for k, v in committed.items() if k.endswith("psnr")}
    accuracy = {k: v for k, v in committed.items() if k.endswith("_acc")}
    assert psnr and accuracy
    assert compare_metrics(measured, psnr, rtol=0.02, atol=0.2) == []
    # 2 prompts: one detector decision flipping by a float difference moves an accuracy by 0.5
    assert compare_metrics(measured, accuracy, rtol=0.0, atol=0.5) == []


def test_readme_results_table_quotes_the_recorded_benchmark():
    """Each number of the README's results table that names its metric key is the recorded full benchmark's value."""
    recorded = json.loads((ROOT / "experiments/toy-model/results/metrics.json").read_text())
    assert recorded["config"]["name"] == "full" and recorded["model"].endswith("cogfun/assets/toy-model")
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| [^|]*\(`([a-z0-9_/]+)`[^|]*\) \| (-?[0-9.]+)(%| dB)? \| ([0-9.]*)(?:%| dB)? ?\|",
                      readme, re.M)
    assert len(rows) >= 10, "the results table lost its metric keys"
    assert sum(bool(se) for *_, se in rows) >= 6, "the results table lost its standard errors"

    def quoted(key: str, value: str, unit: str) -> None:
        measured = recorded["metrics"][key] * (100 if unit == "%" else 1)
        decimals = len(value.split(".")[1]) if "." in value else 0
        assert round(measured, decimals) == pytest.approx(float(value)), f"README quotes {value} for {key}"

    for key, value, unit, se in rows:
        quoted(key, value, unit)
        if se:  # the s.e. column, in the unit of the measured value
            quoted(f"{key}_se", se, unit)
