"""The demo task: generated movie-review sentiment with negation and contrast, offline and deterministic.

A bag of words gets it wrong by construction: positive and negative words occur equally often in both classes,
and the label is carried by word order (`not`, `but`, `although`), so a trained model must read the sentence.
"""

from __future__ import annotations

import random

POSITIVE = ("great", "wonderful", "superb", "charming", "brilliant", "delightful", "moving", "gripping")
NEGATIVE = ("awful", "dull", "terrible", "boring", "clumsy", "bland", "tedious", "shallow")
NOUNS = (
    "film",
    "plot",
    "acting",
    "soundtrack",
    "ending",
    "dialogue",
    "cast",
    "pacing",
    "script",
    "camera work",
)


def _adjective(rng: random.Random, positive: bool) -> str:
    return rng.choice(POSITIVE if positive else NEGATIVE)


def _sentence(rng: random.Random) -> tuple[str, int]:
    """One review and its label (1 positive); each template has both labels equally often."""
    first, second = rng.sample(NOUNS, 2)
    polarity = rng.random() < 0.5
    template = rng.randrange(5)
    if template == 0:
        return f"the {first} was {_adjective(rng, polarity)}", int(polarity)
    if template == 1:
        return f"the {first} was not {_adjective(rng, polarity)}", int(not polarity)
    opening = _adjective(rng, not polarity)
    if template == 2:
        return f"the {first} was {opening} but the {second} was {_adjective(rng, polarity)}", int(polarity)
    if template == 3:
        return f"although the {first} was {opening} , the {second} was {_adjective(rng, polarity)}", int(
            polarity
        )
    closing = _adjective(rng, not polarity)
    return f"the {first} was {_adjective(rng, polarity)} and the {second} was not {closing}", int(polarity)


def demo_examples(count: int, seed: int) -> list[tuple[str, int]]:
    """`count` (sentence, label) pairs; the same seed always gives the same list."""
    rng = random.Random(seed)
    return [_sentence(rng) for _ in range(count)]
