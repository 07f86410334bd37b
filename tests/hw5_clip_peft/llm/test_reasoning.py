"""Reasoning methods: prompts, the comparison on the Qwen twin, per-level accuracy, votes over k."""
import pytest

from hw5_clip_peft.llm.llm_models import load_causal_lm
from hw5_clip_peft.llm.reasoning import (METHODS, ReasoningConfig, accuracy_by_level, accuracy_vs_k,
                                         build_prompt, compare_methods, sample_chains)
from hw5_clip_peft.llm.word_problems import generate_problems


@pytest.fixture(scope="module")
def qwen(qwen_dir):
    return load_causal_lm(str(qwen_dir))


def test_prompts_per_method(qwen):
    _, tokenizer = qwen
    problem, *shots = generate_problems(4, seed=1)
    few = build_prompt(tokenizer, problem, "few_shot_cot", shots)
    assert all(s.solution in few for s in shots) and few.endswith("<|im_start|>assistant\n")
    assert few.count("<|im_start|>user") == len(shots) + 1
    assert "گام به گام" in build_prompt(tokenizer, problem, "zero_shot_cot")
    assert "گام به گام" not in build_prompt(tokenizer, problem, "direct")
    with pytest.raises(ValueError, match="unknown method"):
        build_prompt(tokenizer, problem, "tree_of_thought")


def test_compare_methods_end_to_end(qwen):
    model, tokenizer = qwen
    config = ReasoningConfig(num_problems=4, k=3, max_new_tokens=8, direct_max_new_tokens=4, num_shots=1)
    rows, problems = compare_methods(model, tokenizer, config)
    assert [r["method"] for r in rows] == list(METHODS)
    assert [p.level for p in problems] == [1, 2, 3, 1]
    for r in rows:
        assert 0 <= r["accuracy"] <= 1 and r["tokens"] > 0 and r["seconds"] > 0
        assert set(r["by_level"]) == {"1", "2", "3"}
        assert [s["level"] for s in r["samples"]] == [1, 2, 3]  # the first problem of each level
    sc = rows[-1]
    assert [len(a) for a in sc["answers"]] == [3] * 4 and len(sc["accuracy_vs_k"]) == 3
    assert sc["tokens"] > rows[1]["tokens"]  # k sampled chains against one greedy chain


def test_accuracy_vs_k_votes_on_prefixes():
    problems = generate_problems(2, seed=0)
    a0, a1 = problems[0].answer, problems[1].answer
    answers = [[a0 + 1, a0, a0], [a1, None, a1 + 1]]
    assert accuracy_vs_k(answers, problems) == [0.5, 0.5, 1.0]


def test_accuracy_by_level_and_samples():
    problems = generate_problems(6, seed=0)  # levels 1, 2, 3, 1, 2, 3
    correct = [True, False, False, True, True, False]
    assert accuracy_by_level(correct, problems) == {"1": 1.0, "2": 0.5, "3": 0.0}
    texts = [["x" * 500] for _ in problems]
    final = [p.answer if c else None for p, c in zip(problems, correct)]
    samples = sample_chains(problems, texts, final, ReasoningConfig(num_samples=4, sample_chars=100))
    assert [s["level"] for s in samples] == [1, 2, 3, 1]
    assert [s["correct"] for s in samples] == [True, False, False, True]
    assert all(len(s["chain"]) <= 102 and s["chain"].endswith("…") for s in samples)
