"""The dev metrics of instruction tasks, each against a value computed by hand from the tiny model's own logits:
reply loss and perplexity, greedy exact match with its answer extractor, multiple-choice accuracy (summed and
length-normalised log-likelihood), and forgetting."""

from __future__ import annotations

import math

import pytest
import torch
from peft import LoraConfig, get_peft_model

from autopeft.tasks.answer_extractor import AnswerExtractor
from autopeft.tasks.chat_format import IGNORED, ChatFormat
from autopeft.tasks.general_text import general_text_rows
from autopeft.tasks.instruction_data import InstructionExample
from autopeft.tasks.instruction_dev import DevScoring, InstructionDev
from tests.tasks.tiny_chat import tiny_causal_lm, tiny_chat_tokenizer

CPU = torch.device("cpu")
DEV = [
    InstructionExample((("user", "what is 23 plus 45 ?"), ("assistant", "68"))),
    InstructionExample((("user", "hi"), ("assistant", "hello there"))),
    InstructionExample((("user", "colour of the sky ?"), ("assistant", "blue , or green"))),
]


def _log_probabilities(model: torch.nn.Module, ids: tuple[int, ...]) -> torch.Tensor:
    """log p(token t | tokens < t) for t >= 1, from one unpadded forward pass."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    return torch.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]


def _reply_log_likelihood(
    model: torch.nn.Module, ids: tuple[int, ...], labels: tuple[int, ...]
) -> tuple[float, int]:
    scored = torch.tensor([label != IGNORED for label in labels[1:]])
    return float(_log_probabilities(model, ids)[scored].sum()), int(scored.sum())


def _dev(metric: str, examples: list[InstructionExample] = DEV, **settings: object) -> InstructionDev:
    return InstructionDev.build(
        examples, ChatFormat(tiny_chat_tokenizer()), 64, DevScoring(metric, **settings)
    )


def test_reply_loss_and_perplexity_are_the_token_weighted_reply_nll() -> None:
    model = tiny_causal_lm()
    dev = _dev("loss")
    pairs = [_reply_log_likelihood(model, e.input_ids, e.labels) for e in dev.encoded]
    expected = -sum(total for total, _ in pairs) / sum(count for _, count in pairs)
    assert [count for _, count in pairs] == [2, 3, 5]  # reply tokens and the end-of-turn marker
    assert dev.evaluate(model, batch_size=2, device=CPU).metric == pytest.approx(expected, rel=1e-5)
    perplexity = _dev("perplexity").evaluate(model, batch_size=3, device=CPU)
    assert perplexity.metric == pytest.approx(math.exp(expected), rel=1e-5)
    assert perplexity.predictions == []


def _greedy_text(model: torch.nn.Module, prompt: tuple[int, ...], steps: int) -> str:
    """Greedy decoding by hand: full forward passes, argmax, stop at </s>."""
    tokenizer = tiny_chat_tokenizer()
    ids = list(prompt)
    for _ in range(steps):
        with torch.no_grad():
            token = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        if token == tokenizer.eos_token_id:
            break
        ids.append(token)
    return tokenizer.decode(ids[len(prompt) :], skip_special_tokens=True)


def test_exact_match_compares_the_answer_of_the_greedy_reply_with_the_references() -> None:
    model = tiny_causal_lm(seed=1)
    prompts = ["what is 1 plus 2 ?", "hi", "colour of the sky ?", "say yes again !"]  # left padding differs
    probe = _dev("loss", [InstructionExample((("user", p), ("assistant", "0"))) for p in prompts])
    generated = [_greedy_text(model, e.prompt_ids, 6) for e in probe.encoded]
    answers = [AnswerExtractor(r"(\w+)")(text) for text in generated]
    assert all(answers), generated  # every greedy reply has a word for the pattern to find
    references = [f"it is {answers[0]}", f"it is {answers[1]}", "it is nothing", "it is nothing"]
    examples = [InstructionExample((("user", p), ("assistant", r))) for p, r in zip(prompts, references)]
    evaluation = _dev("exact_match", examples, answers=AnswerExtractor(r"(\w+)"), max_new_tokens=6).evaluate(
        model, batch_size=3, device=CPU
    )
    expected = [int(answer != "nothing") for answer in answers[:2]] + [
        int(answer == "nothing") for answer in answers[2:]
    ]
    assert evaluation.predictions == expected
    assert evaluation.metric == sum(expected) / 4


def test_the_default_extractor_takes_the_last_number_and_a_pattern_its_last_match() -> None:
    last_number = AnswerExtractor()
    assert last_number("so 12 plus 30 is 42.") == "42"
    assert last_number("total: 1,234.50 dollars") == "1234.5"
    assert last_number("7.0") == last_number("7") == "7"
    assert last_number("no digits") is None
    assert AnswerExtractor(r"answer: (\w+)")("answer: no, answer: yes") == "yes"
    assert AnswerExtractor(r"[A-D]")("B or maybe C") == "C"


def _choice_items() -> list[InstructionExample]:
    return [
        InstructionExample(
            (("user", "colour of the sky ?"), ("assistant", "blue")), ("blue", "green red green", "red"), 0
        ),
        InstructionExample((("user", "say yes"), ("assistant", "no")), ("yes", "no , no , no"), 1),
        InstructionExample(
            (("user", "hi"), ("assistant", "hello there")), ("hi", "hello there", "good day"), 1
        ),
    ]


@pytest.mark.parametrize("normalized", [False, True])
def test_choice_accuracy_picks_the_option_with_the_largest_log_likelihood(normalized: bool) -> None:
    model = tiny_causal_lm(seed=2)
    chat = ChatFormat(tiny_chat_tokenizer())
    expected = []
    for item in _choice_items():
        scores = []
        for option in item.options:
            encoded = chat.encode(item.with_reply(option), 64)
            total, count = _reply_log_likelihood(model, encoded.input_ids, encoded.labels)
            scores.append(total / count if normalized else total)
        expected.append(max(range(len(scores)), key=scores.__getitem__))
    metric = "choice_accuracy_normalized" if normalized else "choice_accuracy"
    evaluation = _dev(metric, _choice_items()).evaluate(model, batch_size=4, device=CPU)
    assert evaluation.predictions == expected
    assert evaluation.metric == sum(c == i.answer for c, i in zip(expected, _choice_items())) / 3


def test_summed_and_normalised_choices_differ_when_option_lengths_do() -> None:
    model = tiny_causal_lm(seed=2)
    summed = _dev("choice_accuracy", _choice_items()).evaluate(model, 4, CPU).predictions
    normalized = _dev("choice_accuracy_normalized", _choice_items()).evaluate(model, 4, CPU).predictions
    assert summed != normalized


def test_forgetting_is_zero_for_a_fresh_adapter_and_the_loss_change_after_training() -> None:
    base = tiny_causal_lm(seed=3)
    model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj", "v_proj"]))
    dev = _dev("loss")
    assert dev.final_metrics(model, 8, CPU) == {"forgetting": pytest.approx(0.0, abs=1e-6)}
    rows = general_text_rows(tiny_chat_tokenizer(), 64)

    def general_loss() -> float:
        pairs = [_reply_log_likelihood(model, ids, labels) for ids, labels in rows]
        return -sum(t for t, _ in pairs) / sum(c for _, c in pairs)

    before = general_loss()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    after = general_loss()
    assert after != pytest.approx(before)
    assert dev.final_metrics(model, 8, CPU)["forgetting"] == pytest.approx(after - before, rel=1e-4)
