"""The decoder demo task: generated instructions with a short numeric answer, offline and deterministic.

Four kinds of question, equally often: the sum or the difference of two two-digit numbers, how many words a list
holds, and the largest number of a list. The answer never appears in the prompt for the first three, and for the
fourth the model must pick the right one of several numbers, so copying the prompt does not solve it; each reply
is a number only, so exact match with the last-number extractor scores it, and a 135M model learns the format
and most of the arithmetic in a few hundred steps.
"""

from __future__ import annotations

import random

from autopeft.tasks.instruction_data import InstructionExample

WORDS = (
    "apple", "river", "candle", "garden", "window", "pencil", "orange", "bridge", "rabbit", "button",
    "forest", "mirror", "planet", "ticket", "violin", "basket",
)  # fmt: skip
DEMO_SFT_SIZES = {"train": 2000, "dev": 200}


def _question(rng: random.Random) -> tuple[str, int]:
    kind = rng.randrange(4)
    if kind == 0:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        return f"What is {a} plus {b}?", a + b
    if kind == 1:
        a = rng.randint(20, 99)
        b = rng.randint(10, a - 1)
        return f"What is {a} minus {b}?", a - b
    if kind == 2:
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 9))]
        return f"How many words are in this list: {', '.join(words)}?", len(words)
    numbers = rng.sample(range(10, 100), rng.randint(3, 6))
    return f"What is the largest number in this list: {', '.join(map(str, numbers))}?", max(numbers)


def demo_sft_examples(count: int, seed: int) -> tuple[InstructionExample, ...]:
    """`count` one-turn conversations; the same seed always gives the same ones."""
    rng = random.Random(seed)
    examples = []
    for index in range(count):
        question, answer = _question(rng)
        source = f"demo_sft example {index} (seed {seed})"
        examples.append(InstructionExample((("user", question), ("assistant", str(answer))), source=source))
    return tuple(examples)
