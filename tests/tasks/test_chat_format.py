"""ChatFormat: exactly the reply tokens carry labels, with a chat template and in the plain format."""

from __future__ import annotations

import pytest

from autopeft.errors import ConfigError
from autopeft.tasks.chat_format import IGNORED, ChatFormat
from autopeft.tasks.instruction_data import InstructionExample
from tests.tasks.tiny_chat import tiny_chat_tokenizer

QUESTION = InstructionExample((("user", "what is 23 plus 45 ?"), ("assistant", "68")))


def _ids(words: str) -> list[int]:
    return tiny_chat_tokenizer().convert_tokens_to_ids(words.split())


def test_only_the_reply_and_its_end_of_turn_carry_labels_with_a_chat_template() -> None:
    encoded = ChatFormat(tiny_chat_tokenizer()).encode(QUESTION, max_length=64)
    assert list(encoded.input_ids) == _ids("<user> what is 23 plus 45 ? </s> <assistant> 68 </s>")
    assert list(encoded.labels) == [IGNORED] * 9 + _ids("68 </s>")
    assert encoded.reply_start == 9 and list(encoded.prompt_ids) == _ids(
        "<user> what is 23 plus 45 ? </s> <assistant>"
    )
    assert not encoded.truncated


def test_every_assistant_turn_of_a_conversation_is_trained_and_no_other() -> None:
    conversation = InstructionExample(
        (
            ("system", "say yes"),
            ("user", "hi"),
            ("assistant", "yes"),
            ("user", "again"),
            ("assistant", "yes !"),
        )
    )
    encoded = ChatFormat(tiny_chat_tokenizer()).encode(conversation, max_length=64)
    words = (
        "<system> say yes </s> <user> hi </s> <assistant> yes </s> <user> again </s> <assistant> yes ! </s>"
    )
    assert list(encoded.input_ids) == _ids(words)
    trained = [label != IGNORED for label in encoded.labels]
    assert trained == [False] * 8 + [True, True] + [False] * 4 + [True, True, True]
    assert encoded.reply_start == 14


def test_without_a_template_the_plain_format_is_prompt_newline_reply_and_eos() -> None:
    chat = ChatFormat(tiny_chat_tokenizer(template=None))
    assert chat.pieces(QUESTION.messages) == [("what is 23 plus 45 ?\n", False), ("68</s>", True)]
    encoded = chat.encode(QUESTION, max_length=64)
    assert list(encoded.input_ids) == _ids("what is 23 plus 45 ? 68 </s>")
    assert list(encoded.labels) == [IGNORED] * 6 + _ids("68 </s>")


def test_max_length_cuts_the_end_and_says_so() -> None:
    chat = ChatFormat(tiny_chat_tokenizer())
    cut = chat.encode(QUESTION, max_length=10)
    assert cut.truncated and cut.has_reply and cut.keeps_last_reply
    assert list(cut.labels) == [IGNORED] * 9 + _ids("68")
    gone = chat.encode(QUESTION, max_length=8)
    assert gone.truncated and not gone.has_reply and not gone.keeps_last_reply


def test_a_template_that_rewrites_earlier_turns_is_refused_with_its_reason() -> None:
    rewriting = (  # renders only the last turn
        "{% for m in messages %}{% if loop.last %}<{{ m['role'] }}> {{ m['content'] }} {% endif %}{% endfor %}"
    )
    conversation = InstructionExample(
        (("user", "hi"), ("assistant", "yes"), ("user", "again"), ("assistant", "no"))
    )
    with pytest.raises(ConfigError, match="does not render a conversation as a prefix of its continuation"):
        ChatFormat(tiny_chat_tokenizer(template=rewriting)).encode(conversation, max_length=64)
