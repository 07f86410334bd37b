import ast
import operator
import re

import pytest

from hw5_clip_peft.llm.word_problems import (LEVELS, TEMPLATES, extract_answer, extract_numbers,
                                             generate_problems, majority_vote, normalize_digits)

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _eval(formula: str, values: dict) -> float:
    """A tiny arithmetic evaluator, independent of the generator's own lambdas."""
    def walk(node):
        if isinstance(node, ast.BinOp):
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Name):
            return values[node.id]
        raise ValueError(node)
    return walk(ast.parse(formula, mode="eval").body)


@pytest.mark.parametrize("persian", [True, False])
def test_answers_recomputed_from_the_question_text(persian):
    problems = generate_problems(210, seed=3, persian_digits=persian)
    assert {p.level for p in problems} == {1, 2, 3}
    for p in problems:
        numbers = extract_numbers(p.question)
        letters = sorted(set(re.findall(r"[a-d]", p.formula)))
        assert len(numbers) == len(letters), p.question
        expected = _eval(p.formula, dict(zip(letters, numbers)))
        assert expected == int(expected) and expected >= 0  # every step stays a whole, non-negative count
        assert p.answer == expected
        assert extract_answer(p.solution) == p.answer
        has_persian = bool(re.search("[۰-۹]", p.question))
        assert has_persian == persian and (not re.search("[0-9]", p.question)) == persian


def test_the_level_is_the_number_of_operations():
    assert set(LEVELS) == {t.level for t in TEMPLATES} == {1, 2, 3}
    for t in TEMPLATES:
        assert len(re.findall(r"[-+*/]", t.formula)) == t.level, t.formula
    single = {t.formula for t in TEMPLATES if t.level == 1}
    assert single == {"a+b", "a-b", "a*b", "a/b"}  # every single multiplication/division is level 1


@pytest.mark.parametrize("persian", [True, False])
def test_worked_steps_are_right(persian):
    """Each step of a worked solution ("X می‌شود Y") is the running result, recomputed here."""
    for p in generate_problems(120, seed=5, persian_digits=persian):
        steps = [float(n) for n in re.findall(r"می‌شود (\S+?)[،.]", normalize_digits(p.solution))]
        assert len(steps) == p.level and steps[-1] == p.answer, p.solution
        numbers = extract_numbers(p.question)
        letters = sorted(set(re.findall(r"[a-d]", p.formula)))
        assert steps[0] == _eval_first_op(p.formula, dict(zip(letters, numbers)))


def _eval_first_op(formula: str, values: dict) -> float:
    """The first operation the formula performs (a*b in "(a*b+c)/d", a+b in "a+b-c")."""
    ops = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
    match = re.search(r"([a-d])([-+*/])([a-d])", formula)
    return ops[match.group(2)](values[match.group(1)], values[match.group(3)])


def test_every_template_is_used_and_seeded():
    problems = generate_problems(300, seed=0)
    assert {p.formula for p in problems} == {t.formula for t in TEMPLATES}
    assert generate_problems(5, seed=9) == generate_problems(5, seed=9)
    with pytest.raises(ValueError, match="levels"):
        generate_problems(3, levels=(4,))


@pytest.mark.parametrize("text, expected", [
    ("پاسخ: ۴۲", 42), ("جواب ٤٢ است", 42), ("answer: 42", 42),
    ("۱۲ + ۵ = ۱۷ پس پاسخ نهایی: ۱۷.", 17),
    ("اول ۳ بعد ۸ و در پایان ۲۱", 21),  # no marker: last number
    ("پاسخ: ۱٬۲۳۴", 1234), ("the total is 1,234 apples", 1234), ("۳٫۵ کیلو", 3.5), ("پاسخ: -۷", -7),
    ("پاسخ: ۹ ... (ولی شاید ۱۰)", 9),  # first number after the last marker, noise after it ignored
    ("بدون عدد", None), ("", None),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_digit_normalisation():
    assert normalize_digits("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩") == "01234567890123456789"


def test_majority_vote_with_ties_and_missing():
    assert majority_vote([3, 5, 5, 3, None]) == (3, 2)  # tie: the answer seen first wins
    assert majority_vote([None, 7, 7, 2]) == (7, 2)
    assert majority_vote([None, None]) == (None, 0)
    assert majority_vote([]) == (None, 0)
