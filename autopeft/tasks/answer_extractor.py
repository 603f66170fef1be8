"""AnswerExtractor: the short answer inside a generated or reference reply, for generation exact match.

By default the answer is the last number in the text (thousands separators dropped, `7.0` equal to `7`), the
usual rule for arithmetic data. `task.answer_pattern` gives a regular expression instead: the answer is its last
match (its first group when it has one), compared as stripped text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


@dataclass(frozen=True)
class AnswerExtractor:
    """Finds the answer in a reply: the last number, or the last match of `pattern`."""

    pattern: str | None = None

    def __call__(self, text: str) -> str | None:
        """The answer in `text` in a canonical form, or None when there is none."""
        if self.pattern is None:
            numbers = _NUMBER.findall(text)
            return _canonical_number(numbers[-1]) if numbers else None
        matches = list(re.finditer(self.pattern, text))
        if not matches:
            return None
        last = matches[-1]
        return (last.group(1) if last.re.groups else last.group(0)).strip()

    def describe(self) -> str:
        return "the last number" if self.pattern is None else f"task.answer_pattern {self.pattern!r}"


def _canonical_number(text: str) -> str:
    """`1,234.50` -> `1234.5`, `7.0` -> `7`: equal numbers compare equal as text."""
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return text
    normal = value.normalize()
    return format(normal.quantize(Decimal(1)) if normal == normal.to_integral() else normal, "f")


def exact_match(references: list[str | None], predictions: list[str | None]) -> list[int]:
    """1 where the prediction's answer equals the reference's, else 0 (no answer never matches)."""
    return [
        int(ref is not None and ref == prediction)
        for ref, prediction in zip(references, predictions, strict=True)
    ]
