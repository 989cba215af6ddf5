"""How long a chat reply may be, read from the character's style ("answer in one to three short
sentences", "under 280 characters", "keep it brief"). A small model does not keep to a length it
is only told about: the cap is what holds it there."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_MAX_TOKENS = 256
SHORT_MAX_TOKENS = 96  # "short", "brief", "concise": about three short sentences
TOKENS_PER_SENTENCE = 32  # a short sentence is 12-20 tokens; the sentence count stops first
CHARS_PER_TOKEN = 4
MIN_TOKENS = 8
TOKENS_PER_WORD = 1.4

_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "couple": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}  # fmt: skip
_COUNT = r"(\d+|" + "|".join(_NUMBERS) + r")"
# "one to three sentences", "1-3 short sentences", "two sentences", "a sentence or two"
_SENTENCES = re.compile(
    rf"\b{_COUNT}(?:\s*(?:to|-|–|or)\s*{_COUNT})?\s+(?:(?!few|several|many)\w+\s+)?"
    rf"sentences?(?:\s+or\s+{_COUNT})?\b"
)
_CHARACTERS = re.compile(r"\b(\d+)\s*(?:characters|chars)\b")
_WORDS = re.compile(rf"\b{_COUNT}(?:\s*(?:to|-|–|or)\s*{_COUNT})?\s+words\b")
_SHORT = re.compile(r"\b(short|brief|briefly|concise|terse|succinct)\b")


@dataclass(frozen=True)
class ReplyLength:
    max_tokens: int = DEFAULT_MAX_TOKENS
    max_sentences: int | None = None


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBERS[word]


def _upper(match: re.Match[str]) -> int:
    """The largest number a match names: "one to three" is three."""
    return max(_count(g) for g in match.groups() if g)


def reply_length(style: Iterable[str]) -> ReplyLength:
    """The tightest limit any line of the style sets; the default when none sets one."""
    tokens: list[int] = []
    sentences: list[int] = []
    for line in style:
        text = line.lower()
        line_tokens = [_upper(m) * TOKENS_PER_SENTENCE for m in _SENTENCES.finditer(text)]
        sentences += [_upper(m) for m in _SENTENCES.finditer(text)]
        line_tokens += [int(m.group(1)) // CHARS_PER_TOKEN for m in _CHARACTERS.finditer(text)]
        line_tokens += [round(_upper(m) * TOKENS_PER_WORD) for m in _WORDS.finditer(text)]
        if not line_tokens and _SHORT.search(text):  # a number on the line says more than "short"
            line_tokens.append(SHORT_MAX_TOKENS)
        tokens += [max(MIN_TOKENS, t) for t in line_tokens]
    return ReplyLength(
        max_tokens=min(tokens, default=DEFAULT_MAX_TOKENS),
        max_sentences=min(sentences, default=None),
    )
