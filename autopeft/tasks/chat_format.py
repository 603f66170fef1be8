"""ChatFormat: a conversation as token ids and labels, with the loss on the assistant's replies only.

With a chat template (SmolLM2's ChatML, say) the conversation is rendered by the template, and each reply is
the text the template adds for that assistant turn after its generation prompt (the reply and its end-of-turn
marker). A tokenizer without a template gets the plain format: each turn's content on its own line, each reply
followed by the end-of-sequence token (`"prompt\\nresponse</s>"`), with the beginning-of-sequence token first
when the tokenizer adds one itself.

Pieces are tokenised one by one and concatenated, so the boundary between prompt and reply tokens is exact:
reply tokens carry their own ids as labels, every other token -100 (ignored by the loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase

from autopeft.errors import ConfigError
from autopeft.tasks.instruction_data import InstructionExample

IGNORED = -100
"""The label of a token the loss ignores (prompt tokens, padding)."""


@dataclass(frozen=True)
class EncodedExample:
    """Token ids, labels (-100 outside replies), where the last reply starts (the tokens before it are the
    generation prompt), and whether `max_length` cut the end off."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    reply_start: int
    truncated: bool

    @property
    def has_reply(self) -> bool:
        """True when at least one reply token survived truncation."""
        return any(label != IGNORED for label in self.labels)

    @property
    def keeps_last_reply(self) -> bool:
        """True when the last reply's first token survived truncation (a dev conversation can be scored)."""
        return self.reply_start < len(self.labels) and self.labels[self.reply_start] != IGNORED

    @property
    def prompt_ids(self) -> tuple[int, ...]:
        return self.input_ids[: self.reply_start]


class ChatFormat:
    """Renders conversations with `tokenizer`'s chat template when it has one, else in the plain format."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        self.uses_template = bool(getattr(tokenizer, "chat_template", None))
        eos = tokenizer.eos_token
        self.end_of_reply = eos if isinstance(eos, str) else ""
        bos = tokenizer.bos_token_id
        adds_bos = bos is not None and tokenizer("a")["input_ids"][:1] == [bos]
        self.leading = [int(bos)] if adds_bos and not self.uses_template and bos is not None else []

    def encode(self, example: InstructionExample, max_length: int) -> EncodedExample:
        """Ids and labels of the whole conversation, cut to `max_length` tokens."""
        ids, labels = list(self.leading), [IGNORED] * len(self.leading)
        reply_start = 0
        for text, trained in self.pieces(example.messages):
            piece = self._ids(text)
            if trained:
                reply_start = len(ids)
            ids += piece
            labels += piece if trained else [IGNORED] * len(piece)
        truncated = len(ids) > max_length
        return EncodedExample(
            tuple(ids[:max_length]), tuple(labels[:max_length]), min(reply_start, max_length), truncated
        )

    def pieces(self, messages: tuple[tuple[str, str], ...]) -> list[tuple[str, bool]]:
        """The conversation as (text, is a reply) pieces, in order."""
        return self._template_pieces(messages) if self.uses_template else self._plain_pieces(messages)

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def _plain_pieces(self, messages: tuple[tuple[str, str], ...]) -> list[tuple[str, bool]]:
        pieces: list[tuple[str, bool]] = []
        for index, (role, content) in enumerate(messages):
            if role == "assistant":
                pieces.append((content + self.end_of_reply, True))
                if index < len(messages) - 1:
                    pieces.append(("\n", False))
            else:
                pieces.append((content + "\n", False))
        return pieces

    def _template_pieces(self, messages: tuple[tuple[str, str], ...]) -> list[tuple[str, bool]]:
        """Each reply is what rendering its turn adds after the generation prompt; a template that does not
        render a conversation as a prefix of its continuation (one that rewrites earlier turns) is refused."""
        pieces: list[tuple[str, bool]] = []
        done = ""
        for index, (role, _) in enumerate(messages):
            if role != "assistant":
                continue
            prompt = self._render(messages[:index], generation_prompt=True)
            through = self._render(messages[: index + 1], generation_prompt=False)
            if not (prompt.startswith(done) and through.startswith(prompt)):
                raise ConfigError(
                    f"{self.tokenizer.name_or_path}: the chat template does not render a conversation as a "
                    "prefix of its continuation, so reply tokens cannot be told apart; expected a template "
                    "such as ChatML that only appends each turn"
                )
            pieces += [(prompt[len(done) :], False), (through[len(prompt) :], True)]
            done = through
        rest = self._render(messages, generation_prompt=False)[len(done) :]
        return [piece for piece in [*pieces, (rest, False)] if piece[0]]

    def _render(self, messages: tuple[tuple[str, str], ...], generation_prompt: bool) -> str:
        turns: list[dict[str, Any]] = [{"role": role, "content": content} for role, content in messages]
        rendered = self.tokenizer.apply_chat_template(
            turns, tokenize=False, add_generation_prompt=generation_prompt
        )
        assert isinstance(rendered, str)  # tokenize=False renders text
        return rendered
