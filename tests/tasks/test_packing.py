"""Packing: conversations share rows, but neither labels nor attention cross a conversation's boundary; and
truncation is counted, never silent."""

from __future__ import annotations

import pytest
import torch

from autopeft.tasks.chat_format import IGNORED, ChatFormat
from autopeft.tasks.instruction_data import InstructionExample
from autopeft.tasks.instruction_split import InstructionSplit, pack, packed_batch, padded_batch
from tests.tasks.tiny_chat import tiny_causal_lm, tiny_chat_tokenizer

CPU = torch.device("cpu")
CONVERSATIONS = [
    InstructionExample((("user", "what is 23 plus 45 ?"), ("assistant", "68"))),  # 11 tokens
    InstructionExample((("user", "hi"), ("assistant", "hello there"))),  # 7 tokens
    InstructionExample((("user", "colour of the sky ?"), ("assistant", "blue"))),  # 10 tokens
]


def _encoded(max_length: int = 64) -> list:
    chat = ChatFormat(tiny_chat_tokenizer())
    return [chat.encode(example, max_length) for example in CONVERSATIONS]


def test_rows_hold_whole_conversations_with_their_own_positions_and_no_label_across_a_boundary() -> None:
    encoded = _encoded()
    rows = pack(encoded, max_length=20)
    assert [len(ids) for ids, _, _ in rows] == [18, 10]  # 11 + 7 fit in 20; the third starts a new row
    ids, labels, positions = rows[0]
    assert ids == encoded[0].input_ids + encoded[1].input_ids
    assert positions == (*range(11), *range(7))
    assert labels[0] == IGNORED and labels[11] == IGNORED  # no conversation's first token is a target
    assert labels == encoded[0].labels + encoded[1].labels
    assert sum(label != IGNORED for label in labels) == 2 + 3  # "68 </s>" and "hello there </s>"


def test_a_packed_row_gives_each_conversation_the_logits_it_has_alone() -> None:
    model = tiny_causal_lm()
    encoded = _encoded()
    batch = packed_batch(pack(encoded[:2], max_length=20), pad_id=0, device=CPU)
    assert "attention_mask" not in batch
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        alone = [model(input_ids=torch.tensor([e.input_ids])).logits[0] for e in encoded[:2]]
    torch.testing.assert_close(packed[:11], alone[0])
    torch.testing.assert_close(packed[11:18], alone[1])


def test_the_packed_loss_is_the_token_weighted_loss_of_the_conversations() -> None:
    model = tiny_causal_lm()
    encoded = _encoded()
    packed = packed_batch(pack(encoded, max_length=20), pad_id=0, device=CPU)
    padded = padded_batch([(e.input_ids, e.labels) for e in encoded], pad_id=0, device=CPU)
    with torch.no_grad():
        packed_loss = model(**packed).loss
        padded_loss = model(**padded).loss
    torch.testing.assert_close(packed_loss, padded_loss)


def test_truncated_and_dropped_conversations_are_counted() -> None:
    chat = ChatFormat(tiny_chat_tokenizer())
    split = InstructionSplit.build(CONVERSATIONS, chat, max_length=9, packing=True)
    # 11 tokens -> cut to 9, reply "68" starts at 9: dropped; 7 tokens fit; 10 tokens -> cut, reply at 7 kept
    assert split.data_metrics == {"truncated_examples": 2.0, "dropped_examples": 1.0}
    assert len(split) == 2
    batch = next(split.shuffled_forever(batch_size=1, device=CPU, seed=0))
    assert batch["input_ids"].shape[1] <= 9


def test_packed_batches_cover_every_conversation_each_epoch() -> None:
    chat = ChatFormat(tiny_chat_tokenizer())
    split = InstructionSplit.build(CONVERSATIONS * 4, chat, max_length=32, packing=True)
    batches = split.shuffled_forever(batch_size=1, device=CPU, seed=3)
    rows = [next(batches) for _ in range(len(split.rows(range(len(split)))))]
    starts = sum(int((b["position_ids"][0] == 0).sum()) for b in rows)
    assert starts == 12
    assert sum(int((b["labels"] != IGNORED).sum()) for b in rows) == 4 * (2 + 3 + 2)


@pytest.mark.parametrize("packing", [False, True])
def test_a_split_serves_reproducible_batches_from_its_seed(packing: bool) -> None:
    chat = ChatFormat(tiny_chat_tokenizer())
    split = InstructionSplit.build(CONVERSATIONS * 3, chat, max_length=32, packing=packing)
    first = [next(split.shuffled_forever(2, CPU, seed=5))["input_ids"] for _ in range(2)]
    assert torch.equal(first[0], first[1])
