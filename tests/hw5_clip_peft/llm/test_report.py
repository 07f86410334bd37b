"""The analysis text states what the results say: built from numbers, labelled a pipeline check for twins."""
from hw5_clip_peft.llm.report import reasoning_analysis, render_report, sentiment_analysis


def _sentiment(twin, zero, tuned, positive_rate=0.5):
    return {"model": "HooshvareLab/gpt2-fa", "twin": twin, "num_virtual_tokens": 4,
            "data": {"available": {"negative": 300, "positive": 200},
                     "used": {"negative": 200, "positive": 200},
                     "train": {"negative": 140, "positive": 140},
                     "validation": {"negative": 60, "positive": 60}},
            "parameters": {"base": 1000, "trainable": 40, "total": 1040},
            "zero_shot": {"accuracy": zero, "positive_rate": positive_rate, "mean_margin": 0.1},
            "soft_prompt": {"accuracy": tuned, "positive_rate": 0.5, "mean_margin": 0.5},
            "history": [{"epoch": 1, "train_loss": 2.0, "val_loss": 1.9},
                        {"epoch": 2, "train_loss": 1.0, "val_loss": 1.1}],
            "nearest_tokens": [[("a", 0.3), ("b", 0.2)], [("c", 0.4), ("d", 0.1)]]}


def _method(name, by_level, answered=1.0, tokens=100, seconds=1.0, curve=None):
    row = {"method": name, "by_level": by_level, "accuracy": sum(by_level.values()) / 3, "answered": answered,
           "tokens": tokens, "tokens_per_problem": tokens / 30, "seconds": seconds,
           "samples": [{"level": 1, "question": "q", "answer": 3, "chain": "۱ + ۲ = ۳ پاسخ: ۳", "chains": 1,
                        "final": 3.0, "correct": True}]}
    if curve:
        row["accuracy_vs_k"] = curve
    return row


def _reasoning(twin):
    return {"model": "Qwen/Qwen2.5-1.5B-Instruct", "twin": twin, "k": 5,
            "levels": {"1": "one", "2": "two", "3": "three"},
            "problems_per_level": {"1": 10, "2": 10, "3": 10},
            "methods": [_method("direct", {"1": 0.9, "2": 0.5, "3": 0.2}, tokens=60),
                        _method("zero_shot_cot", {"1": 0.9, "2": 0.7, "3": 0.4}, answered=0.8, tokens=1000),
                        _method("few_shot_cot", {"1": 0.9, "2": 0.8, "3": 0.6}, tokens=900),
                        _method("self_consistency", {"1": 1.0, "2": 0.8, "3": 0.6}, tokens=5000, seconds=5.0,
                                curve=[0.5, 0.6, 0.7, 0.7, 0.8])]}


def test_real_sentiment_analysis_states_the_comparison():
    text = sentiment_analysis(_sentiment(False, 0.55, 0.80))
    assert "scores 0.800 against 0.550" in text and "higher by 0.250" in text
    assert "larger than twice its standard error" in text
    close = sentiment_analysis(_sentiment(False, 0.55, 0.57))
    assert "within twice its standard error" in close
    biased = sentiment_analysis(_sentiment(False, 0.5, 0.8, positive_rate=0.97))
    assert "mostly one label" in biased and "Pipeline" not in biased


def test_twin_sentiment_analysis_is_a_pipeline_check():
    text = sentiment_analysis(_sentiment(True, 0.5, 0.58))
    assert text.startswith("**Pipeline check, not a result.**") and "from 1.9000 to 1.1000" in text


def test_real_reasoning_analysis_states_the_comparison():
    text = reasoning_analysis(_reasoning(False))
    assert "the most accurate in this run: self-consistency (0.80" in text
    assert "level 1 +0.00, level 2 +0.30, level 3 +0.40" in text and "largest at level 3" in text
    assert "level 3 minus level 1: direct answer -0.70" in text
    assert "accuracy 0.50 with one sampled chain and 0.80 with 5 (higher)" in text
    assert "Zero-shot CoT is above the direct answer" in text and "also fixed the answer format" in text


def test_real_reasoning_analysis_with_no_differences_claims_none():
    flat = _reasoning(False)
    for row in flat["methods"]:
        row.update(by_level={"1": 0.0, "2": 0.0, "3": 0.0}, accuracy=0.0, answered=0.0)
    flat["methods"][-1]["accuracy_vs_k"] = [0.0] * 5
    text = reasoning_analysis(flat)
    assert "beats the direct answer at no level" in text and "largest" not in text
    assert "direct answer and zero-shot CoT and few-shot CoT and self-consistency (0.00" in text
    assert "(not higher)" in text and "did not make answers easier to read" in text


def test_equal_sentiment_accuracies_are_called_equal():
    assert "the same accuracy" in sentiment_analysis(_sentiment(False, 0.5, 0.5))


def test_report_has_tables_and_labels_twins():
    md = render_report({"sentiment": _sentiment(True, 0.5, 0.6), "reasoning": _reasoning(True)})
    assert "**Pipeline check**" in md and "a tiny random-weight twin of HooshvareLab/gpt2-fa" in md
    assert "| direct answer | 0.90 | 0.50 | 0.20 |" in md and "| available | 300 | 200 |" in md
    real = render_report({"sentiment": _sentiment(False, 0.5, 0.6), "reasoning": _reasoning(False)})
    assert "Pipeline" not in real and "## Reasoning methods on Qwen/Qwen2.5-1.5B-Instruct" in real
