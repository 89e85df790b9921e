"""Prompts as a person writes them, and warnings for what the tokenizer would drop.

A tokenizer turns words it does not know into ``<unk>`` and cuts a prompt at the model's text length; both
used to happen without a word. Here, before a prompt is encoded for the pipeline:

- a word the tokenizer does not know but knows in lower case and without trailing ``.,!?;:`` is taken in that
  form ("A RED Circle." reads as "a red circle"), as a person would read it. A tokenizer that knows the word as
  written (a real T5 knows "Red" and "dog,") gets it unchanged; the tokenizer files on disk are not touched.
  Words that are only such punctuation are dropped.
- words that still become ``<unk>`` are named in a warning;
- a prompt longer than ``max_length`` tokens (with ``</s>``) is named in a warning with the words cut.
"""

from __future__ import annotations

import warnings

TRAILING_PUNCTUATION = ".,!?;:"


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False, verbose=False).input_ids)  # verbose: no "too long" log


def normalise_prompt(tokenizer, prompt: str) -> tuple[str, list[str]]:
    """The prompt with unknown words lower-cased and stripped of trailing punctuation, and the words still unknown.

    Returns:
        ``(prompt, unknown_words)``.
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return prompt, []
    words, unknown = [], []
    for word in prompt.split():
        if unk in _ids(tokenizer, word):
            plain = word.lower().rstrip(TRAILING_PUNCTUATION)
            if not plain:
                continue  # a lone "." or "!": nothing a reader would keep
            if unk not in _ids(tokenizer, plain):
                word = plain
            else:
                unknown.append(word)
        words.append(word)
    return " ".join(words), unknown


def words_cut(tokenizer, prompt: str, max_length: int) -> list[str]:
    """The words of ``prompt`` beyond ``max_length - 1`` tokens (the last place is ``</s>``); empty when it fits."""
    if len(_ids(tokenizer, prompt)) <= max_length - 1:
        return []
    words = prompt.split()
    for keep in range(len(words), -1, -1):
        if len(_ids(tokenizer, " ".join(words[:keep]))) <= max_length - 1:
            return words[keep:]
    return words


def prepare_prompts(tokenizer, prompts: list[str], max_length: int, what: str = "prompt") -> list[str]:
    """Normalise each prompt (see the module docstring) and warn, naming the words, about unknown and cut words.

    Args:
        tokenizer: the pipeline's tokenizer.
        prompts: the prompts of a batch.
        max_length: the model's text length in tokens (``max_text_seq_length``), ``</s>`` included.
        what: "prompt" or "negative prompt", for the messages.
    """
    prepared = []
    for prompt in prompts:
        text, unknown = normalise_prompt(tokenizer, prompt)
        if unknown:
            warnings.warn(
                f"the {what} {prompt!r} has words this model's tokenizer does not know: {unknown}; they become "
                "unknown tokens (<unk>) and carry no meaning; use words from its vocabulary (for the toy model: "
                "cogfun.data.toy.TOY_VOCABULARY)", stacklevel=4,
            )
        cut = words_cut(tokenizer, text, max_length)
        if cut:
            warnings.warn(
                f"the {what} {prompt!r} is longer than the model's text length of {max_length} tokens: "
                f"{' '.join(cut)!r} is cut; shorten the {what}", stacklevel=4,
            )
        prepared.append(text)
    return prepared
