"""A tiny word-level chat tokenizer and causal LLaMA built offline, for the instruction-tuning tests.

Every word is one token (punctuation marks are words of their own, and so is each number up to 199), and text
is lower-cased, so a test can count tokens by hand. The chat template writes a turn as `<role> content </s>`
and the generation prompt as `<assistant>`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from autopeft.tasks.demo_sft import WORDS
from tests.tiny_models import tiny_llama_config

SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "<system>", "<user>", "<assistant>"]
TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<assistant> {% endif %}"
)
_WORDS = [
    "what",
    "is",
    "plus",
    "minus",
    "the",
    "largest",
    "number",
    "in",
    "this",
    "list",
    "how",
    "many",
    "words",
    "are",
    "a",
    "an",
    "answer",
    "with",
    "hello",
    "hi",
    "there",
    "yes",
    "no",
    "colour",
    "of",
    "sky",
    "blue",
    "green",
    "red",
    "say",
    "again",
    "thanks",
    "good",
    "day",
    ",",
    "?",
    ".",
    ":",
    "!",
    "-",
]


def tiny_chat_tokenizer(template: str | None = TEMPLATE) -> PreTrainedTokenizerFast:
    """The word-level tokenizer, with `template` as its chat template (None: the plain format)."""
    vocabulary = [*SPECIALS, *[str(n) for n in range(200)], *dict.fromkeys([*_WORDS, *WORDS])]
    model = models.WordLevel({word: index for index, word in enumerate(vocabulary)}, unk_token="<unk>")
    backend = Tokenizer(model)
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=SPECIALS[4:],
    )
    tokenizer.chat_template = template
    return tokenizer


def tiny_causal_lm(seed: int = 0) -> LlamaForCausalLM:
    """A random 2-block causal LLaMA over the tiny tokenizer's vocabulary, without its key-value cache."""
    torch.manual_seed(seed)
    config = tiny_llama_config()
    config.vocab_size = len(tiny_chat_tokenizer())
    config.use_cache = False
    return LlamaForCausalLM(config).eval()


def save_tiny_causal_lm(folder: Path) -> Path:
    """The tiny causal LM and its chat tokenizer saved as a model folder."""
    tiny_causal_lm().save_pretrained(folder)
    tiny_chat_tokenizer().save_pretrained(folder)
    return folder
