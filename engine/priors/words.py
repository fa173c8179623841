"""Word-level tokenizers for closed-vocabulary priors (the built-in prior and the tiny test priors).

Saved with ``save_pretrained`` as a standard ``tokenizer.json``, so ``AutoTokenizer.from_pretrained``
loads it like any other; :func:`check_words` (behind ``DiffusionPrior.vocabulary_check`` and the server's
check at the door, which loads only the tokenizer) recognises the WordLevel model and turns unknown words
into a clear error instead of silent ``[UNK]`` tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "[BOS]", "[EOS]"


def word_level_tokenizer(vocab: Sequence[str], max_length: int = 16):
    """A lower-casing, whitespace/punctuation-splitting word-level tokenizer over ``vocab``.

    Prompts become ``[BOS] words [EOS] [PAD]...`` like CLIP's ``<|startoftext|> ... <|endoftext|>``.
    Returns a ``transformers.PreTrainedTokenizerFast``.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    ids = {tok: i for i, tok in enumerate([PAD, UNK, BOS, EOS, *dict.fromkeys(w.lower() for w in vocab)])}
    backend = Tokenizer(models.WordLevel(vocab=ids, unk_token=UNK))
    backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, ids[BOS]), (EOS, ids[EOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        model_max_length=max_length,
    )


def check_words(tokenizer: Any, prompt: str, prior_name: str) -> None:
    """With a word-level tokenizer, raise ``ValueError`` naming the prompt's unknown words and the known
    ones; other tokenizers (BPE, …) are open-vocabulary: no-op.

    Case and punctuation follow the tokenizer's own normaliser and pre-tokenizer (the built-in priors
    lower-case and split commas off)."""
    from tokenizers.models import WordLevel

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not isinstance(backend.model, WordLevel):
        return
    enc = backend.encode(prompt, add_special_tokens=False)
    unk = tokenizer.unk_token_id
    unknown = list(
        dict.fromkeys(prompt[s:e] for i, (s, e) in zip(enc.ids, enc.offsets, strict=True) if i == unk)
    )
    if unknown:
        special = set(tokenizer.all_special_tokens)
        vocab = backend.get_vocab(with_added_tokens=False)
        known = [w for w in sorted(vocab, key=vocab.__getitem__) if w not in special]
        raise ValueError(
            f"unknown word(s) {', '.join(map(repr, unknown))} in prompt {prompt!r}: the prior {prior_name} "
            f"knows only {', '.join(map(repr, known))}. Rephrase with those words, or use a Stable "
            "Diffusion prior (--prior sd) for open-vocabulary prompts."
        )


def load_tokenizer(folder: str | Path) -> Any:
    """Only the tokenizer of a local diffusers prior folder (``<folder>/tokenizer``): enough to check a
    prompt's words without loading any weights."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(Path(folder) / "tokenizer")
