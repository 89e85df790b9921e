"""Text side of CogVideoX(-Fun): a T5 tokenizer, a T5 encoder and the prompt encoding the pipeline uses.

Real CogVideoX checkpoints ship `tokenizer/` (a SentencePiece `T5Tokenizer`) and `text_encoder/`
(`T5EncoderModel`, T5 v1.1 XXL: d_model 4096, 24 layers, 64 heads x 64, gated-GELU feed-forward).
Prompts are padded to `max_length` (226), truncated, end with `</s>`, and the encoder is called
on the token ids alone (CogVideoX, arXiv:2408.06072; diffusers
`CogVideoXPipeline._get_t5_prompt_embeds`).

For CPU toy models this module builds the same classes at toy size, offline:

- `build_toy_tokenizer`: a `transformers.T5Tokenizer` whose vocabulary is `<pad>`=0, `</s>`=1,
  `<unk>`=2 (as in T5) followed by one piece per given word, so the captions of the toy world
  tokenize word by word. It saves and loads with `save_pretrained` / `from_pretrained` (also
  through `AutoTokenizer`) without the hub.
- `build_tiny_t5_encoder`: a randomly initialised `transformers.T5EncoderModel` with the T5 v1.1
  layout, deterministic for a seed, in eval mode.
- `encode_prompts`: prompt embeddings exactly as diffusers' `_get_t5_prompt_embeds` computes them.

Quirk kept on purpose (it is what the checkpoints were trained with): no attention mask reaches
the encoder, so the `<pad>` positions take part in self-attention and the embedding of a word
depends on how much padding follows it, i.e. on `max_length`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch
from transformers import T5Config, T5EncoderModel, T5Tokenizer

# T5's fixed special ids (SentencePiece model of t5 / t5 v1.1, also in CogVideoX's tokenizer).
PAD_TOKEN, EOS_TOKEN, UNK_TOKEN = "<pad>", "</s>", "<unk>"
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
# SentencePiece's word-boundary marker: the pre-tokenizer turns "red" into the piece "▁red".
WORD_MARKER = "\u2581"


# ----------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------


def build_toy_tokenizer(words: Sequence[str], model_max_length: int = 16) -> T5Tokenizer:
    """Build a T5 tokenizer in which every given word is exactly one token.

    The result is a `transformers.T5Tokenizer` (the `tokenizers`-backed class of transformers 5;
    `T5TokenizerFast` is the same class there) with a Unigram model over the pieces
    `<pad>`, `</s>`, `<unk>`, `▁word_0`, `▁word_1`, ...: ids 0, 1, 2 are T5's pad, eos and unk and
    `words[i]` gets id `i + 3`. There are no `<extra_id_*>` sentinels (`extra_ids=0`), so
    `len(tokenizer) == len(words) + 3`: build the encoder with that `vocab_size`.

    How text is split (T5's pre-tokenizer): on whitespace, each word prefixed with `▁`.
    - A word of `words` is always one token.
    - A word made of characters no piece starts with maps to a single `<unk>` (unknown characters
      are fused), e.g. "dog" -> [`<unk>`].
    - A word that merely starts with a vocabulary word keeps that piece and the rest becomes
      `<unk>`, as SentencePiece would: "circles" -> [`▁circle`, `<unk>`]. Punctuation glued to a
      word behaves the same ("red," -> [`▁red`, `<unk>`]); strip it from captions, or list
      "red," as a word of its own.
    - Case: matching is case-sensitive, like T5's SentencePiece model, and nothing is lowercased
      ("Red" is `<unk>` when only "red" is listed). Lowercase captions before tokenizing (the toy
      world's captions are lowercase) or list each spelling you need. A lowercasing normalizer
      is deliberately not added: `T5Tokenizer.from_pretrained` rebuilds its normalizer, so it
      would be lost on a save/load round trip. The pipeline does it instead, where prompts are encoded
      (``cogfun.pipelines.prompts``): a word unknown as written is read lower-cased and without trailing
      ``.,!?;:``, and words still unknown, or cut at ``max_length``, are named in a warning.
    - `tokenizer(prompt)` appends `</s>` (add_special_tokens=True); with
      `padding="max_length", truncation=True` the ids are cut to `max_length - 1` tokens plus
      `</s>`, then padded on the right with `<pad>`.

    Args:
        words: the vocabulary, unique non-empty strings without whitespace, without `▁` and
            other than `<pad>`, `</s>`, `<unk>`. Order sets the ids (`words[i]` -> `i + 3`).
        model_max_length: default maximum length stored in the tokenizer (CogVideoX's is 226).
            Calls that pass `max_length` use theirs. Default 16.

    Returns:
        transformers.T5Tokenizer: the tokenizer, offline, saveable with `save_pretrained`.
    """
    words = list(words)
    if not words:
        raise ValueError("words is empty; pass the vocabulary, e.g. the words of all captions")
    if model_max_length < 1:
        raise ValueError(f"model_max_length must be >= 1 (got {model_max_length}); CogVideoX uses 226")
    for word in words:
        if not isinstance(word, str) or not word:
            raise ValueError(f"every word must be a non-empty str (got {word!r}); drop it from words")
        if word != "".join(word.split()):
            raise ValueError(
                f"word {word!r} contains whitespace; the tokenizer splits on whitespace, so list its parts "
                "as separate words"
            )
        if WORD_MARKER in word:
            raise ValueError(f"word {word!r} contains the SentencePiece marker {WORD_MARKER!r}; remove it")
        if word in (PAD_TOKEN, EOS_TOKEN, UNK_TOKEN):
            raise ValueError(f"word {word!r} is a T5 special token and already has an id; drop it from words")
    duplicates = sorted(word for word, count in Counter(words).items() if count > 1)
    if duplicates:
        raise ValueError(
            f"words must be unique (repeated: {duplicates}); deduplicate in order with list(dict.fromkeys(words))"
        )

    # Unigram pieces with (piece, log-probability) scores. Specials score 0 as in T5's model; the
    # words share a uniform log-probability. Every piece starts with the word marker, so a
    # word can only be covered by one piece followed by unknown characters: a listed word is
    # always its own piece, whatever the scores.
    word_score = -math.log(len(words))
    vocab = [(PAD_TOKEN, 0.0), (EOS_TOKEN, 0.0), (UNK_TOKEN, 0.0)]
    vocab += [(WORD_MARKER + word, word_score) for word in words]
    # `vocab=` builds the backend in memory; `vocab_file=` silently breaks in transformers 5.
    return T5Tokenizer(
        vocab=vocab,
        extra_ids=0,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=model_max_length,
    )


# ----------------------------------------------------------------------------------------------
# Encoder
# ----------------------------------------------------------------------------------------------


def build_tiny_t5_encoder(
    vocab_size: int,
    d_model: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    d_ff: int = 64,
    d_kv: int = 16,
    seed: int = 0,
) -> T5EncoderModel:
    """Build a tiny, randomly initialised `T5EncoderModel` with CogVideoX's T5 v1.1 layout.

    Same architecture as the real text encoder (gated-GELU feed-forward, relative position
    buckets 32 / max distance 128, RMS layer norm eps 1e-6, dropout 0.1 that eval mode turns
    off), only smaller. Weights come from transformers' own T5 initialisation drawn under
    `torch.manual_seed(seed)` inside a forked RNG, so the same seed gives the same weights and the
    caller's global RNG state is left untouched.

    Args:
        vocab_size: rows of the embedding table; `len(tokenizer)` of `build_toy_tokenizer`.
        d_model: hidden size, i.e. the width of the prompt embeddings (real: 4096). Default 32.
        num_layers: encoder blocks (real: 24). Default 2.
        num_heads: attention heads (real: 64). Default 2.
        d_ff: feed-forward width (real: 10240). Default 64.
        d_kv: size of one head (real: 64); attention width is `num_heads * d_kv`. Default 16.
        seed: seed of the initialisation. Default 0.

    Returns:
        transformers.T5EncoderModel: float32, on CPU, in eval mode.
    """
    sizes = dict(
        vocab_size=vocab_size, d_model=d_model, num_layers=num_layers, num_heads=num_heads, d_ff=d_ff, d_kv=d_kv
    )
    too_small = {name: value for name, value in sizes.items() if value < 1}
    if too_small:
        raise ValueError(f"sizes must be >= 1 (got {too_small}); e.g. build_tiny_t5_encoder(len(tokenizer))")
    if vocab_size < 3:
        raise ValueError(
            f"vocab_size must cover T5's <pad>, </s>, <unk> (ids 0-2), got {vocab_size}; pass len(tokenizer)"
        )
    config = T5Config(
        **sizes,
        feed_forward_proj="gated-gelu",  # T5 v1.1, as CogVideoX's text encoder
        tie_word_embeddings=False,  # T5 v1.1 flag (transformers 5 stores it as scale_decoder_outputs)
        is_encoder_decoder=False,
        use_cache=False,
        pad_token_id=PAD_ID,
        eos_token_id=EOS_ID,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5EncoderModel(config)
    return model.eval()


# ----------------------------------------------------------------------------------------------
# Prompt encoding
# ----------------------------------------------------------------------------------------------


def encode_prompts(
    tokenizer,
    text_encoder: T5EncoderModel,
    prompts: str | Sequence[str],
    max_length: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Encode prompts into T5 embeddings the way diffusers' CogVideoXPipeline does.

    Mirrors `CogVideoXPipeline._get_t5_prompt_embeds` (diffusers 0.42) with one video per
    prompt: tokenize with `padding="max_length", max_length=max_length, truncation=True,
    add_special_tokens=True`, call the encoder on the ids only (no attention mask, so padding is
    attended: see the module docstring), take the last hidden state and cast it. Like diffusers,
    it does not switch off autograd: wrap the call in `torch.no_grad()` for a frozen encoder.
    Prompts longer than `max_length - 1` tokens are cut silently (diffusers logs a warning).

    Args:
        tokenizer: a T5 tokenizer (`build_toy_tokenizer`, or a checkpoint's `tokenizer/`).
        text_encoder: the matching `T5EncoderModel`; call `.eval()` on it first.
        prompts: one prompt or a list of B prompts.
        max_length: tokens per prompt after padding/truncation; must equal the transformer's
            `max_text_seq_length` when it uses sincos positions (226 for real models).
        device: where the ids go and the embeddings end up. Default: the encoder's device.
        dtype: dtype of the returned embeddings. Default: the encoder's dtype.

    Returns:
        torch.Tensor: `(B, max_length, d_model)` prompt embeddings (`encoder_hidden_states`).
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise ValueError("prompts is empty; pass a str or a list of at least one str")
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1 (got {max_length}); CogVideoX uses 226")
    if len(tokenizer) > text_encoder.config.vocab_size:
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens but the encoder only {text_encoder.config.vocab_size} "
            "embeddings; build the encoder with vocab_size=len(tokenizer)"
        )
    device = torch.device(device) if device is not None else text_encoder.device
    dtype = dtype or text_encoder.dtype

    # 1. Tokenize exactly as the pipeline: pad to max_length, truncate, append </s>.
    text_input_ids = tokenizer(
        prompts,
        padding="max_length",
        max_length=max_length,
        truncation=True,
        add_special_tokens=True,
        return_tensors="pt",
    ).input_ids  # (B, max_length)

    # 2. Encode the ids alone (no attention mask, as CogVideoX was trained).
    prompt_embeds = text_encoder(text_input_ids.to(device))[0]  # (B, max_length, d_model)
    return prompt_embeds.to(dtype=dtype, device=device)
