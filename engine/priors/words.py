"""Word-level tokenizers for closed-vocabulary priors (the built-in prior and the tiny test priors).

Saved with ``save_pretrained`` as a standard ``tokenizer.json``, so ``AutoTokenizer.from_pretrained``
loads it like any other; ``PixelDiffusionPrior.vocabulary_check`` recognises the WordLevel model and turns
unknown words into a clear error instead of silent ``[UNK]`` tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

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
