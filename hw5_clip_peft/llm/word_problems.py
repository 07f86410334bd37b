"""Persian arithmetic word problems with known answers, and robust answer extraction (hw5.P4).

Problems come from templates at three difficulty levels; **the level is the number of arithmetic
operations** the answer needs (:data:`LEVELS`): level 1 is one operation (an addition, a subtraction, a
multiplication or a division), level 2 two operations, level 3 three. Each template carries its formula over
the named quantities, so a test can recompute every answer from the numbers printed in the question,
independently of the generator's own arithmetic, and check that the formula has exactly ``level`` operators.
Numbers can be written with Persian (۰–۹) or Latin digits; :func:`extract_answer` also reads Arabic-Indic
digits (٠–٩), Persian thousands/decimal separators and noisy model output.
"""
from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

PERSIAN_DIGITS = "۰۱۲۳۴۵۶۷۸۹"
ARABIC_INDIC_DIGITS = "٠١٢٣٤٥٦٧٨٩"
_TO_LATIN = str.maketrans(PERSIAN_DIGITS + ARABIC_INDIC_DIGITS, "0123456789" * 2)
NAMES = ("علی", "مریم", "رضا", "سارا", "حسین", "زهرا", "امیر", "نگار")
ITEMS = ("سیب", "مداد", "کتاب", "گل", "توپ", "شیرینی", "دفتر", "تخم‌مرغ")
LEVELS = {1: "one operation: a single addition, subtraction, multiplication or division",
          2: "two operations, e.g. a multiplication then an addition, or a sum shared out by division",
          3: "three operations, e.g. a product plus a gift minus what was given away, divided or not"}


@dataclass(frozen=True)
class Template:
    level: int  # = the number of operators in ``formula``
    text: str  # Persian question with {name}, {item} and one {letter} per quantity, in formula order
    formula: str  # e.g. "a+b-c": letters appear in the question in this order
    solve: Callable[..., int]  # the generator's own arithmetic (kept apart from ``formula`` on purpose)
    draw: Callable[[random.Random], dict]  # quantities that keep every step a non-negative integer
    steps: str  # Persian worked solution with the same placeholders, {s1}, {s2} (intermediates) and {ans}
    intermediates: Callable[..., dict] = lambda **_: {}


def _ab(rng):
    return {"a": rng.randint(5, 60), "b": rng.randint(2, 40)}


def _sub(rng):
    a = rng.randint(20, 90)
    return {"a": a, "b": rng.randint(2, a - 1)}


def _mul(rng):
    return {"a": rng.randint(3, 12), "b": rng.randint(2, 12)}


def _div(rng):
    b = rng.randint(2, 9)
    return {"a": b * rng.randint(2, 12), "b": b}


def _abc(rng):
    a, b = rng.randint(10, 50), rng.randint(5, 40)
    return {"a": a, "b": b, "c": rng.randint(1, a + b - 1)}


def _mul_add(rng):
    return {"a": rng.randint(2, 9), "b": rng.randint(3, 12), "c": rng.randint(1, 20)}


def _sum_div(rng):
    c = rng.randint(2, 6)
    a = rng.randint(3, 30)
    b = c * rng.randint(1, 10) - a % c  # keeps (a + b) divisible by c
    b = b if b > 0 else b + c
    return {"a": a, "b": b, "c": c}


def _mul_add_sub(rng):
    a, b, c = rng.randint(2, 9), rng.randint(3, 12), rng.randint(1, 20)
    return {"a": a, "b": b, "c": c, "d": rng.randint(1, a * b + c - 1)}


def _mul_add_div(rng):
    d = rng.randint(2, 6)
    a, b = rng.randint(2, 8), rng.randint(2, 10)
    c = d * rng.randint(1, 10) - (a * b) % d  # keeps (a*b + c) divisible by d
    c = c if c > 0 else c + d
    return {"a": a, "b": b, "c": c, "d": d}


TEMPLATES: tuple[Template, ...] = (
    Template(1, "{name} {a} {item} دارد و {b} {item} دیگر می‌خرد. اکنون چند {item} دارد؟", "a+b",
             lambda a, b: a + b, _ab, "{a} به علاوه‌ی {b} می‌شود {ans}."),
    Template(1, "{name} {a} {item} داشت و {b} {item} به دوستش داد. چند {item} برایش ماند؟", "a-b",
             lambda a, b: a - b, _sub, "{a} منهای {b} می‌شود {ans}."),
    Template(1, "هر جعبه {a} {item} دارد. {name} {b} جعبه خرید. او روی هم چند {item} خرید؟", "a*b",
             lambda a, b: a * b, _mul, "{a} ضرب در {b} می‌شود {ans}."),
    Template(1, "{name} {a} {item} را به طور مساوی میان {b} نفر تقسیم کرد. به هر نفر چند {item} رسید؟", "a/b",
             lambda a, b: a // b, _div, "{a} تقسیم بر {b} می‌شود {ans}."),
    Template(2, "{name} {a} {item} داشت، {b} {item} خرید و سپس {c} {item} فروخت. چند {item} دارد؟", "a+b-c",
             lambda a, b, c: a + b - c, _abc, "{a} به علاوه‌ی {b} می‌شود {s1}، منهای {c} می‌شود {ans}.",
             lambda a, b, c: {"s1": a + b}),
    Template(2, "{name} {a} بسته خرید که در هر بسته {b} {item} بود، و {c} {item} هم هدیه گرفت. "
                "چند {item} دارد؟", "a*b+c", lambda a, b, c: a * b + c, _mul_add,
             "{a} ضرب در {b} می‌شود {s1}، به علاوه‌ی {c} می‌شود {ans}.", lambda a, b, c: {"s1": a * b}),
    Template(2, "{name} {a} {item} داشت و {b} {item} دیگر خرید و همه را میان {c} نفر به طور مساوی تقسیم کرد. "
                "به هر نفر چند {item} رسید؟", "(a+b)/c", lambda a, b, c: (a + b) // c, _sum_div,
             "{a} به علاوه‌ی {b} می‌شود {s1}، تقسیم بر {c} می‌شود {ans}.", lambda a, b, c: {"s1": a + b}),
    Template(3, "{name} {a} بسته خرید که در هر بسته {b} {item} بود، {c} {item} هم هدیه گرفت و سپس {d} {item} "
                "به دوستانش داد. چند {item} برایش ماند؟", "a*b+c-d", lambda a, b, c, d: a * b + c - d,
             _mul_add_sub, "{a} ضرب در {b} می‌شود {s1}، به علاوه‌ی {c} می‌شود {s2}، منهای {d} می‌شود {ans}.",
             lambda a, b, c, d: {"s1": a * b, "s2": a * b + c}),
    Template(3, "{name} {a} بسته‌ی {b} تایی {item} و {c} {item} تکی دارد و همه را میان {d} نفر به طور مساوی "
                "تقسیم می‌کند. سهم هر نفر چند {item} است؟", "(a*b+c)/d",
             lambda a, b, c, d: (a * b + c) // d, _mul_add_div,
             "{a} ضرب در {b} می‌شود {s1}، به علاوه‌ی {c} می‌شود {s2}، تقسیم بر {d} می‌شود {ans}.",
             lambda a, b, c, d: {"s1": a * b, "s2": a * b + c}),
)


@dataclass(frozen=True)
class Problem:
    question: str
    answer: int
    level: int
    formula: str
    solution: str  # worked steps ending with "پاسخ: N" (used for few-shot exemplars)


def to_persian_digits(value: int | str) -> str:
    return str(value).translate(str.maketrans("0123456789", PERSIAN_DIGITS))


def generate_problems(n: int, levels: Sequence[int] = (1, 2, 3), persian_digits: bool = True,
                      seed: int = 0) -> list[Problem]:
    """``n`` problems spread evenly over ``levels`` (seeded; problem ``i`` has level ``levels[i % len]``),
    numbers in Persian or Latin digits."""
    if n < 0 or not levels or any(level not in (1, 2, 3) for level in levels):
        raise ValueError(f"need n >= 0 and levels within (1, 2, 3), got n={n}, levels={levels}")
    rng = random.Random(seed)
    fmt = to_persian_digits if persian_digits else str
    out = []
    for i in range(n):
        level = levels[i % len(levels)]
        template = rng.choice([t for t in TEMPLATES if t.level == level])
        values = template.draw(rng)
        answer = template.solve(**values)
        extra = template.intermediates(**values)
        words = {"name": rng.choice(NAMES), "item": rng.choice(ITEMS)}
        shown = {k: fmt(v) for k, v in {**values, **extra, "ans": answer}.items()}
        question = template.text.format(**words, **shown)
        solution = template.steps.format(**shown) + f" پاسخ: {fmt(answer)}"
        out.append(Problem(question, answer, level, template.formula, solution))
    return out


_NUMBER = re.compile(r"-?\d+(?:[.,٬]\d{3})*(?:[.٫]\d+)?")
_MARKER = re.compile(r"(?:پاسخ|جواب|answer)\s*(?:نهایی|final)?\s*[:：=]?\s*", re.IGNORECASE)


def normalize_digits(text: str) -> str:
    """Persian and Arabic-Indic digits → Latin; Persian separators (٬ thousands, ٫ decimal) → ASCII."""
    return text.translate(_TO_LATIN).replace("٫", ".").replace("\u066c", ",")


def extract_numbers(text: str) -> list[float]:
    """Every number in ``text`` in order of appearance, any digit system, thousands separators removed."""
    out = []
    for match in _NUMBER.findall(normalize_digits(text)):
        token = match.replace(",", "")
        try:
            out.append(float(token))
        except ValueError:
            continue
    return out


def extract_answer(text: str) -> float | None:
    """The model's final answer: the first number after the last "پاسخ:"/"جواب:"/"answer:" marker,
    else the last number in the text; ``None`` when there is no number at all."""
    if not text:
        return None
    markers = list(_MARKER.finditer(text))
    if markers:
        after = extract_numbers(text[markers[-1].end():])
        if after:
            return after[0]
    numbers = extract_numbers(text)
    return numbers[-1] if numbers else None


def majority_vote(answers: Iterable[float | None]) -> tuple[float | None, int]:
    """Most frequent non-``None`` answer and its count; ties go to the answer that appeared first."""
    answers = [a for a in answers if a is not None]
    if not answers:
        return None, 0
    counts = Counter(answers)
    best = max(counts.values())
    winner = next(a for a in answers if counts[a] == best)
    return winner, best
