"""Tests of cogfun.models.text_encoder: toy T5 tokenizer, tiny T5 encoder, prompt encoding."""

import pytest
import torch
from transformers import AutoTokenizer, T5EncoderModel, T5Tokenizer

from cogfun.models.text_encoder import (
    EOS_ID,
    PAD_ID,
    UNK_ID,
    build_tiny_t5_encoder,
    build_toy_tokenizer,
    encode_prompts,
)

WORDS = ["a", "red", "blue", "circle", "square", "moves", "left", "right", "over", "photo", "of", "the"]
CAPTIONS = [
    "a red circle moves left",
    "the blue square moves right over a photo",
    "a photo of the red square",
]


def word_id(word):
    return WORDS.index(word) + 3


@pytest.fixture(scope="module")
def tokenizer():
    return build_toy_tokenizer(WORDS, model_max_length=16)


@pytest.fixture(scope="module")
def encoder(tokenizer):
    return build_tiny_t5_encoder(len(tokenizer), seed=0)


# ----------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------


def test_special_ids_are_t5s(tokenizer):
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert (PAD_ID, EOS_ID, UNK_ID) == (0, 1, 2)
    assert tokenizer.convert_ids_to_tokens([0, 1, 2]) == ["<pad>", "</s>", "<unk>"]
    assert len(tokenizer) == len(WORDS) + 3
    assert tokenizer.model_max_length == 16


def test_every_word_is_one_token(tokenizer):
    for i, word in enumerate(WORDS):
        assert tokenizer(word, add_special_tokens=False).input_ids == [i + 3], word
    # Captions tokenize word by word, then </s>.
    ids = tokenizer(CAPTIONS[0]).input_ids
    assert ids == [word_id(w) for w in CAPTIONS[0].split()] + [EOS_ID]
    assert tokenizer.decode(ids, skip_special_tokens=True) == CAPTIONS[0]


def test_unknown_words_map_to_unk(tokenizer):
    # Unknown word -> one <unk>; case-sensitive; a known prefix keeps its piece.
    assert tokenizer("a dog moves").input_ids == [word_id("a"), UNK_ID, word_id("moves"), EOS_ID]
    assert tokenizer("Red").input_ids == [UNK_ID, EOS_ID]
    assert tokenizer("circles").input_ids == [word_id("circle"), UNK_ID, EOS_ID]
    assert tokenizer("").input_ids == [EOS_ID]


def test_padding_and_truncation(tokenizer):
    out = tokenizer(
        ["a red circle", "the blue square moves right over a photo"],
        padding="max_length",
        max_length=6,
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    )
    expected = torch.tensor(
        [
            [word_id("a"), word_id("red"), word_id("circle"), EOS_ID, PAD_ID, PAD_ID],
            # cut to max_length - 1 words, </s> kept last
            [word_id("the"), word_id("blue"), word_id("square"), word_id("moves"), word_id("right"), EOS_ID],
        ]
    )
    assert torch.equal(out.input_ids, expected)
    assert torch.equal(out.attention_mask, torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]))


def test_save_load_round_trip_offline(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer.save_pretrained(tmp_path)
    prompts = CAPTIONS + ["a dog circles", "Red square"]
    before = tokenizer(prompts, padding="max_length", max_length=8, truncation=True).input_ids
    for cls in (T5Tokenizer, AutoTokenizer):
        loaded = cls.from_pretrained(tmp_path)
        assert isinstance(loaded, T5Tokenizer)
        assert loaded.get_vocab() == tokenizer.get_vocab()
        assert loaded.model_max_length == 16
        assert loaded(prompts, padding="max_length", max_length=8, truncation=True).input_ids == before


@pytest.mark.parametrize(
    "words, match",
    [
        ([], "empty"),
        (["red", "red"], "unique"),
        (["red circle"], "whitespace"),
        (["</s>"], "special"),
        (["\u2581red"], "marker"),
        ([""], "non-empty"),
    ],
)
def test_bad_words_raise(words, match):
    with pytest.raises(ValueError, match=match):
        build_toy_tokenizer(words)


# ----------------------------------------------------------------------------------------------
# Encoder
# ----------------------------------------------------------------------------------------------


def test_tiny_encoder_shape_and_determinism(tokenizer, encoder):
    assert not encoder.training
    assert encoder.config.d_model == 32 and encoder.config.num_layers == 2
    assert encoder.config.is_gated_act and encoder.config.vocab_size == len(tokenizer)
    ids = tokenizer(CAPTIONS, padding="max_length", max_length=10, truncation=True, return_tensors="pt").input_ids
    rng_state = torch.random.get_rng_state()
    same = build_tiny_t5_encoder(len(tokenizer), seed=0)
    other = build_tiny_t5_encoder(len(tokenizer), seed=1)
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # caller's RNG untouched
    with torch.no_grad():
        out = encoder(ids)[0]
        assert out.shape == (3, 10, 32)
        assert torch.isfinite(out).all() and out.std() > 0.1
        assert torch.equal(out, encoder(ids)[0])  # eval mode: no dropout
        assert torch.equal(out, same(ids)[0])
        assert not torch.allclose(out, other(ids)[0])
    # Different captions give different embeddings at their first token.
    assert not torch.allclose(out[0, 0], out[1, 0])


def test_encoder_safetensors_round_trip(tokenizer, encoder, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder.save_pretrained(tmp_path, safe_serialization=True)
    assert (tmp_path / "model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin"))
    loaded = T5EncoderModel.from_pretrained(tmp_path).eval()
    ids = tokenizer(CAPTIONS, padding="max_length", max_length=8, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(loaded(ids)[0], encoder(ids)[0])


def test_bad_encoder_sizes_raise():
    with pytest.raises(ValueError, match="len\\(tokenizer\\)"):
        build_tiny_t5_encoder(2)
    with pytest.raises(ValueError, match=">= 1"):
        build_tiny_t5_encoder(10, num_layers=0)


# ----------------------------------------------------------------------------------------------
# Prompt encoding
# ----------------------------------------------------------------------------------------------


def test_encode_prompts_matches_hand_call(tokenizer, encoder):
    with torch.no_grad():
        embeds = encode_prompts(tokenizer, encoder, CAPTIONS, max_length=12)
        ids = tokenizer(
            CAPTIONS, padding="max_length", max_length=12, truncation=True, add_special_tokens=True, return_tensors="pt"
        ).input_ids
        by_hand = encoder(ids)[0]
        single = encode_prompts(tokenizer, encoder, CAPTIONS[1], max_length=12, dtype=torch.float64, device="cpu")
    assert embeds.shape == (3, 12, 32) and embeds.dtype == torch.float32
    assert torch.equal(embeds, by_hand)
    assert single.shape == (1, 12, 32) and single.dtype == torch.float64
    assert torch.equal(single[0], by_hand[1].double())


def test_encode_prompts_padding_is_attended(tokenizer, encoder):
    # CogVideoX passes no attention mask: the same words embed differently with more padding.
    with torch.no_grad():
        short = encode_prompts(tokenizer, encoder, CAPTIONS[0], max_length=8)
        long = encode_prompts(tokenizer, encoder, CAPTIONS[0], max_length=12)
    assert not torch.allclose(short[:, :6], long[:, :6])


def test_encode_prompts_matches_diffusers_pipeline(tokenizer, encoder):
    from diffusers import CogVideoXPipeline

    pipe = CogVideoXPipeline(tokenizer=tokenizer, text_encoder=encoder, vae=None, transformer=None, scheduler=None)
    prompts = CAPTIONS + ["a dog circles over a very long unknown sentence of many words"]
    with torch.no_grad():
        ours = encode_prompts(tokenizer, encoder, prompts, max_length=10)
        theirs = pipe._get_t5_prompt_embeds(prompts, max_sequence_length=10)
        theirs_cpu = pipe._get_t5_prompt_embeds(prompts, max_sequence_length=10, device=torch.device("cpu"))
    assert ours.shape == theirs.shape == (4, 10, 32)
    assert torch.equal(ours, theirs)
    assert torch.equal(ours, theirs_cpu)


def test_encode_prompts_errors(tokenizer, encoder):
    with pytest.raises(ValueError, match="empty"):
        encode_prompts(tokenizer, encoder, [], max_length=8)
    with pytest.raises(ValueError, match="max_length"):
        encode_prompts(tokenizer, encoder, "a", max_length=0)
    small = build_tiny_t5_encoder(5)
    with pytest.raises(ValueError, match="vocab_size=len\\(tokenizer\\)"):
        encode_prompts(tokenizer, small, "a", max_length=8)
