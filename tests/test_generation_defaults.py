"""A model folder's generation_defaults.json: saved, loaded, used for arguments left out, warned about when a size
or length was never trained."""

import dataclasses
import json
import warnings

import pytest
import torch

from cogfun.pipelines import CogVideoXFunPipeline
from cogfun.pipelines.components import build_components
from cogfun.pipelines.generation_defaults import (
    FILE_NAME,
    RELEASED_DEFAULTS,
    GenerationDefaults,
    load_generation_defaults,
)

DEFAULTS = GenerationDefaults(height=32, width=48, num_frames=5, num_inference_steps=2, guidance_scale=3.0,
                              sampler="euler", trained_sizes=((32, 48, 5), (48, 32, 5)))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.set_num_threads(1)
    pipe = CogVideoXFunPipeline(**build_components("tiny", seed=0))
    pipe.generation_defaults = DEFAULTS
    out = tmp_path_factory.mktemp("model")
    pipe.save_pretrained(out)
    return out


def test_defaults_round_trip_through_the_model_folder(folder):
    assert load_generation_defaults(folder) == DEFAULTS
    pipe = CogVideoXFunPipeline.from_pretrained(folder)
    assert pipe.generation_defaults == DEFAULTS
    assert pipe.sampler == "euler"  # the folder's sampler is switched on


def test_arguments_left_out_take_the_models_defaults(folder):
    pipe = CogVideoXFunPipeline.from_pretrained(folder)
    steps = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = pipe.text_to_video("a red circle", generator=torch.Generator().manual_seed(0),
                                 callback_on_step_end=lambda p, i, t, d: steps.append(i) or {})
    assert not [w for w in caught if "never trained" in str(w.message)]  # the default size is a trained one
    assert out.frames[0].shape == (5, 32, 48, 3)
    assert len(steps) == 2
    # explicit arguments win
    out = pipe.text_to_video("a red circle", height=48, width=32, num_frames=5, num_inference_steps=1,
                             generator=torch.Generator().manual_seed(0))
    assert out.frames[0].shape == (5, 48, 32, 3)


def test_a_folders_guidance_rescale_is_used_when_left_out(folder, tmp_path):
    older = tmp_path / "older"
    older.mkdir()
    (older / FILE_NAME).write_text(json.dumps({"num_frames": 5}))  # written before the key existed
    assert load_generation_defaults(older).guidance_rescale == 0.0  # plain guidance
    pipe = CogVideoXFunPipeline.from_pretrained(folder)
    kwargs = dict(num_inference_steps=2, output_type="latent")
    plain = pipe.text_to_video("a red circle", generator=torch.Generator().manual_seed(0), **kwargs).frames
    explicit = pipe.text_to_video("a red circle", guidance_rescale=0.7, generator=torch.Generator().manual_seed(0),
                                  **kwargs).frames
    pipe.generation_defaults = dataclasses.replace(DEFAULTS, guidance_rescale=0.7)
    pipe.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / FILE_NAME).read_text())["guidance_rescale"] == 0.7
    reloaded = CogVideoXFunPipeline.from_pretrained(tmp_path / "saved")
    from_folder = reloaded.text_to_video("a red circle", generator=torch.Generator().manual_seed(0), **kwargs).frames
    torch.testing.assert_close(from_folder, explicit)
    assert (from_folder - plain).abs().max() > 1e-4


def test_untrained_sizes_and_lengths_are_named_in_a_warning(folder):
    pipe = CogVideoXFunPipeline.from_pretrained(folder)
    with pytest.warns(UserWarning, match=r"never trained on size 32x32 \(trained: 32x48, 48x32\)"):
        pipe.text_to_video("a red circle", height=32, width=32, num_inference_steps=1)
    with pytest.warns(UserWarning, match=r"9 frames \(trained: 5\)"):
        pipe.text_to_video("a red circle", num_frames=9, num_inference_steps=1)


def test_folders_without_the_file_keep_the_released_defaults(tmp_path):
    pipe = CogVideoXFunPipeline(**build_components("tiny", seed=0))
    pipe.save_pretrained(tmp_path)
    assert not (tmp_path / FILE_NAME).exists()
    assert CogVideoXFunPipeline.from_pretrained(tmp_path).generation_defaults == RELEASED_DEFAULTS
    assert RELEASED_DEFAULTS.num_frames == 49 and RELEASED_DEFAULTS.num_inference_steps == 50


@pytest.mark.parametrize("values, message", [
    ({"num_frames": 16}, "4k\\+1"),
    ({"sampler": "heun"}, "sampler 'heun'"),
    ({"height": 50, "width": 64}, "multiples of 16"),
    ({"frames": 17}, "unknown keys \\['frames'\\]"),
    ({"guidance_rescale": 1.5}, "guidance_rescale must be in \\[0, 1\\]"),
])
def test_bad_defaults_files_are_refused_naming_the_file(tmp_path, values, message):
    (tmp_path / FILE_NAME).write_text(json.dumps(values))
    with pytest.raises(ValueError, match=message):
        load_generation_defaults(tmp_path)
    (tmp_path / FILE_NAME).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_generation_defaults(tmp_path)
