"""Secrecy: does a text give away a private number of its principal, or echo its instructions? Pure.

`disclosure(text, secrets)` names what `text` gives away, or returns None. A
number in the text is read in every way a person could mean it — cents,
dollars with or without decimals, thousands separated by commas, dots, spaces
or apostrophes, "96 bucks", "9.6k", "ninety-six dollars and fifty cents",
"nine six zero zero" — and each reading is compared with the private numbers
(in cents). What counts:

- a reading equal to a private number that no public number of the
  negotiation equals (asking price, an offer's price, shipping, their totals,
  the move's own price) is a leak;
- a reading equal to a private number that IS also public is a leak only when
  the text also names a limit ("my max", "the lowest I can go", "budget"):
  offering at the floor is allowed, saying that it is the floor is not;
- a run of `ECHO_WORDS` consecutive words from the confidential text (the
  system prompt, the mandate lines) is an echo.

Approximations ("about a hundred") and paraphrases are not caught: the guard
stops what a model can copy, the narrator brain keeps the numbers out of reach.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

ECHO_WORDS = 7

_UNITS = {
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1_000, "grand": 1_000, "k": 1_000, "million": 1_000_000}

# A digit group: thousands separated by , . space ' _ (or none), an optional decimal part, a k suffix.
_DIGITS = re.compile(
    r"(?<![\d])(\d{1,3}(?:[,.'_ \u00a0\u202f]\d{3})+|\d+)(?:[.,](\d{1,3}))?(?![\d])\s*(k|grand)?\b",
    re.IGNORECASE,
)
_SPACED_DIGITS = re.compile(r"(?<![\d])\d(?:[ \-._/]\d(?![\d])){2,}")
_WORD = re.compile(r"[a-z]+|\d+|[^\sa-z\d]", re.IGNORECASE)
_BETWEEN_DOLLARS_AND_CENTS = re.compile(r"^\s*(?:\$|usd|dollars?|bucks?)?\s*(?:and|,|\.)?\s*$", re.IGNORECASE)
_NAMES_A_LIMIT = re.compile(
    r"\b(?:max(?:imum)?|floor|budget|limit|ceiling|cap|bottom|lowest|highest|most|least|walk[- ]?away"
    r"|reserve|allowed|authori[sz]ed|approv\w*|mandate|principal|private|secret|instruct\w*"
    r"|under|below|above|over|tops|less than|more than|no more|no less)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Secrets:
    """What one agent must not say: `private` names cents values; `public` cents values are known to
    the other side anyway; `confidential` is text never to be echoed (its instructions)."""

    private: Mapping[str, int]
    public: frozenset[int] = frozenset()
    confidential: Sequence[str] = field(default=())


def disclosure(text: str, secrets: Secrets) -> str | None:
    """What `text` gives away ("your max", "your system prompt"), or None when it keeps every secret."""
    if not text:
        return None
    readings = amounts(text)
    names_a_limit = _NAMES_A_LIMIT.search(text) is not None
    for name, cents in secrets.private.items():
        if cents in readings and (cents not in secrets.public or names_a_limit):
            return f"your {name}"
    if secrets.confidential and not _shingles(text).isdisjoint(
        _known_shingles(" ".join(secrets.confidential))
    ):
        return "your instructions (system prompt or mandate)"
    return None


def amounts(text: str) -> frozenset[int]:
    """Every amount in cents that some reading of `text` could mean."""
    found: set[int] = set()
    spans: dict[tuple[int, int], list[Decimal]] = {}
    for start, end, value, scale in _numbers(text):
        spans.setdefault((start, end), []).append(value * scale)
        for unit in (1, 100):
            found |= _whole(value * scale * unit)
    ordered = sorted(spans)
    for (_, end_a), (start_b, end_b) in itertools.pairwise(ordered):
        if start_b < end_a or not _BETWEEN_DOLLARS_AND_CENTS.match(text[end_a:start_b]):
            continue
        for a in _at(spans, end_a):
            for b in spans[(start_b, end_b)]:
                if b == b.to_integral_value() and 0 <= b < 100:
                    found |= _whole(a * 100 + b)  # "96 dollars and 50 cents", "ninety-six fifty"
    return frozenset(found)


def _at(spans: Mapping[tuple[int, int], list[Decimal]], end: int) -> list[Decimal]:
    return [value for (_, span_end), values in spans.items() if span_end == end for value in values]


def _whole(value: Decimal) -> set[int]:
    return {int(value)} if value == value.to_integral_value() and 0 < value < 10**12 else set()


def _numbers(text: str) -> list[tuple[int, int, Decimal, int]]:
    """(start, end, value, scale) for every number written in digits or in words, in text order."""
    found = [*_digit_numbers(text), *_spaced_digits(text), *_word_numbers(text)]
    return sorted(found, key=lambda one: (one[0], one[1]))


def _digit_numbers(text: str) -> Iterator[tuple[int, int, Decimal, int]]:
    for match in _DIGITS.finditer(text):
        whole, fraction, suffix = match.group(1), match.group(2), match.group(3)
        scale = 1_000 if suffix else 1
        end = match.end(2) if fraction else match.end(1)
        for value in _readings(whole, fraction):
            yield match.start(), end, value, scale
        groups = re.split(r"[,.'_ \u00a0\u202f]", whole)
        if len(groups) > 1:  # "9.600" may be nine dollars sixty; "2 600" may be two numbers
            yield match.start(), end, Decimal(f"{groups[0]}.{''.join(groups[1:])}"), scale
            for group in groups:
                yield match.start(), end, Decimal(group), 1


def _readings(whole: str, fraction: str | None) -> list[Decimal]:
    digits = re.sub(r"\D", "", whole)
    readings = [Decimal(digits)]
    if fraction:
        readings.append(Decimal(f"{digits}.{fraction}"))
        readings.append(Decimal(digits + fraction))  # "9,600" read with "," as a thousands mark
    return readings


def _spaced_digits(text: str) -> Iterator[tuple[int, int, Decimal, int]]:
    for match in _SPACED_DIGITS.finditer(text):
        yield match.start(), match.end(), Decimal(re.sub(r"\D", "", match.group())), 1


def _word_numbers(text: str) -> Iterator[tuple[int, int, Decimal, int]]:
    """Numbers written in words: "ninety-six", "nine thousand six hundred", "nine six zero zero"."""
    run: list[re.Match[str]] = []
    for match in [*_WORD.finditer(text), None]:
        word = match.group().lower() if match is not None else ""
        if match is not None and (_is_number_word(word) or (run and word in ("-", "and", "a"))):
            run.append(match)
            continue
        while run and run[-1].group().lower() in ("-", "and", "a"):
            run.pop()
        if run and any(_is_number_word(m.group().lower()) for m in run):
            yield from _run_values(run)
        run = []


def _is_number_word(word: str) -> bool:
    return word in _UNITS or word in _TENS or (word in _SCALES and word != "k")


def _run_values(run: list[re.Match[str]]) -> Iterator[tuple[int, int, Decimal, int]]:
    words = [m for m in run if _is_number_word(m.group().lower())]
    for group in _groups(words):
        value = _words_value([m.group().lower() for m in group])
        if value is not None:
            yield group[0].start(), group[-1].end(), Decimal(value), 1
    if len(words) >= 3 and all(_UNITS.get(m.group().lower(), 10) < 10 for m in words):
        digits = "".join(str(_UNITS[m.group().lower()]) for m in words)
        yield words[0].start(), words[-1].end(), Decimal(digits), 1


def _groups(words: list[re.Match[str]]) -> Iterator[list[re.Match[str]]]:
    """Split "ninety six fifty" into "ninety six" and "fifty": a tens word after a unit starts anew."""
    group: list[re.Match[str]] = []
    for match in words:
        word = match.group().lower()
        previous = group[-1].group().lower() if group else None
        starts_anew = previous is not None and (
            (word in _TENS and (previous in _UNITS or previous in _TENS))
            or (word in _UNITS and previous in _UNITS)
            or (word in _UNITS and _UNITS[word] >= 10 and previous in _TENS)
        )
        if starts_anew:
            yield group
            group = []
        group.append(match)
    if group:
        yield group


def _words_value(words: list[str]) -> int | None:
    total = current = 0
    for word in words:
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        else:
            total += max(current, 1) * _SCALES[word]
            current = 0
    value = total + current
    return value if value > 0 else None


@functools.lru_cache(maxsize=256)
def _known_shingles(text: str) -> frozenset[tuple[str, ...]]:
    """A prompt is the same for every turn of a negotiation: read it once."""
    return frozenset(_shingles(text))


def _shingles(text: str, size: int = ECHO_WORDS) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


def public_amounts(values: Iterable[int]) -> frozenset[int]:
    return frozenset(value for value in values if value > 0)


__all__ = ["ECHO_WORDS", "Secrets", "amounts", "disclosure", "public_amounts"]
