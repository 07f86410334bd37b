"""Reasoning methods compared on Persian word problems (hw5.P4): direct answer, zero-shot chain of thought
(Kojima et al. 2022, "Large Language Models are Zero-Shot Reasoners"), few-shot chain of thought (Wei et al.
2022, "Chain-of-Thought Prompting Elicits Reasoning in Large Language Models") and self-consistency (Wang et
al. 2023, "Self-Consistency Improves Chain of Thought Reasoning in Language Models": k sampled chains,
majority vote over their final answers).

Each method reports accuracy overall and per difficulty level (:data:`.word_problems.LEVELS`), generated
tokens, wall time and a few sample chains; self-consistency also reports accuracy against k from one set of
k samples (the first k chains of each problem are voted on).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .word_problems import Problem, extract_answer, generate_problems, majority_vote

METHODS = ("direct", "zero_shot_cot", "few_shot_cot", "self_consistency")
SYSTEM = "تو یک دستیار ریاضی دقیق هستی."  # "you are a careful math assistant"
DIRECT = "فقط عدد پاسخ را بنویس، بدون توضیح.\nپاسخ:"  # "write only the number"
# "let's think step by step and at the end write 'answer: N'"
COT = "بیایید گام به گام فکر کنیم و در پایان بنویسیم «پاسخ: عدد»."


@dataclass(frozen=True)
class ReasoningConfig:
    num_problems: int = 30  # spread evenly over ``levels``
    levels: tuple[int, ...] = (1, 2, 3)
    num_shots: int = 3  # few-shot exemplars, from a disjoint seed, one per level in turn
    k: int = 5  # self-consistency chains
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40  # set explicitly: a model's own generation config (Qwen2.5: 20) must not decide it
    max_new_tokens: int = 160
    direct_max_new_tokens: int = 12
    batch_size: int = 8
    num_samples: int = 3  # chains kept per method for the report
    sample_chars: int = 400  # a kept chain is cut to this many characters
    seed: int = 0


def build_prompt(tokenizer, problem: Problem, method: str, exemplars: list[Problem] = ()) -> str:
    """The chat-formatted prompt for ``method`` (few-shot exemplars as earlier user/assistant turns)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    messages = [{"role": "system", "content": SYSTEM}]
    if method == "few_shot_cot":
        for ex in exemplars:
            messages += [{"role": "user", "content": f"{ex.question}\n{COT}"},
                         {"role": "assistant", "content": ex.solution}]
    suffix = DIRECT if method == "direct" else COT
    messages.append({"role": "user", "content": f"{problem.question}\n{suffix}"})
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages) + "\n"


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int, num_return_sequences: int = 1,
             sample: bool = False, temperature: float = 0.7, top_p: float = 0.95, top_k: int = 40,
             batch_size: int = 8, seed: int = 0) -> tuple[list[list[str]], int]:
    """Completions (``num_return_sequences`` per prompt) and the number of generated (non-pad) tokens.

    Greedy decoding clears the sampling knobs a model's generation config may carry (Qwen2.5 samples by
    default), so "direct" and the chain-of-thought methods are deterministic."""
    device = next(model.parameters()).device
    tokenizer.padding_side = "left"  # generation continues from the right edge
    outputs, generated = [], 0
    torch.manual_seed(seed)
    knobs = (dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=top_k) if sample
             else dict(do_sample=False, temperature=None, top_p=None, top_k=None))
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
        out = model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                             num_return_sequences=num_return_sequences, **knobs)
        new = out[:, batch["input_ids"].shape[1]:]
        generated += int((new != tokenizer.pad_token_id).sum())
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        outputs += [texts[i:i + num_return_sequences] for i in range(0, len(texts), num_return_sequences)]
    return outputs, generated


def _correct(value: float | None, problem: Problem) -> bool:
    return value is not None and abs(value - problem.answer) < 1e-9


def run_method(model, tokenizer, problems: list[Problem], method: str,
               config: ReasoningConfig = ReasoningConfig(), exemplars: list[Problem] = ()) -> dict:
    """One method on ``problems``: accuracy overall and per level, tokens, seconds, every chain's extracted
    answer (``answers``), the full texts (``texts``) and ``config.num_samples`` shortened sample chains."""
    prompts = [build_prompt(tokenizer, p, method, exemplars) for p in problems]
    sc = method == "self_consistency"
    tic = time.perf_counter()
    texts, tokens = generate(model, tokenizer, prompts,
                             max_new_tokens=config.direct_max_new_tokens if method == "direct"
                             else config.max_new_tokens,
                             num_return_sequences=config.k if sc else 1, sample=sc,
                             temperature=config.temperature, top_p=config.top_p, top_k=config.top_k,
                             batch_size=config.batch_size, seed=config.seed)
    seconds = time.perf_counter() - tic
    answers = [[extract_answer(t) for t in chains] for chains in texts]
    final = [majority_vote(a)[0] for a in answers]
    correct = [_correct(f, p) for f, p in zip(final, problems)]
    n = max(len(problems), 1)
    result = {"method": method, "accuracy": sum(correct) / n,
              "by_level": accuracy_by_level(correct, problems),
              "tokens": tokens, "tokens_per_problem": tokens / n, "seconds": seconds,
              "answered": sum(f is not None for f in final) / n, "answers": answers, "final": final,
              "texts": texts, "samples": sample_chains(problems, texts, final, config)}
    if sc:
        result["accuracy_vs_k"] = accuracy_vs_k(answers, problems)
    return result


def accuracy_by_level(correct: list[bool], problems: list[Problem]) -> dict[str, float]:
    """``{"1": acc, "2": acc, ...}`` over the levels present (string keys: the result is written as JSON)."""
    levels = sorted({p.level for p in problems})
    return {str(level): sum(c for c, p in zip(correct, problems) if p.level == level)
            / sum(p.level == level for p in problems) for level in levels}


def sample_chains(problems: list[Problem], texts: list[list[str]], final: list[float | None],
                  config: ReasoningConfig) -> list[dict]:
    """The first problem of each level (then the next ones) with its first chain, cut to
    ``config.sample_chars`` characters, and the method's final answer."""
    firsts = [next(i for i, p in enumerate(problems) if p.level == level)
              for level in dict.fromkeys(p.level for p in problems)]
    order = firsts + [i for i in range(len(problems)) if i not in firsts]
    out = []
    for i in order[:config.num_samples]:
        chain = texts[i][0].strip()
        short = chain if len(chain) <= config.sample_chars else chain[:config.sample_chars].rstrip() + " …"
        p = problems[i]
        out.append({"level": p.level, "question": p.question, "answer": p.answer, "chain": short,
                    "chains": len(texts[i]), "final": final[i], "correct": _correct(final[i], p)})
    return out


def accuracy_vs_k(answers: list[list[float | None]], problems: list[Problem]) -> list[float]:
    """Majority-vote accuracy using the first k chains of each problem; element ``k - 1`` is for k chains."""
    k_max = min(len(a) for a in answers) if answers else 0
    return [sum(_correct(majority_vote(a[:k])[0], p) for a, p in zip(answers, problems)) / len(problems)
            for k in range(1, k_max + 1)]


def problem_sets(config: ReasoningConfig) -> tuple[list[Problem], list[Problem]]:
    """``(problems, exemplars)``: the seeded test problems and few-shot exemplars from a disjoint seed."""
    return (generate_problems(config.num_problems, config.levels, seed=config.seed),
            generate_problems(config.num_shots, config.levels, seed=config.seed + 10_000))


def compare_methods(model, tokenizer, config: ReasoningConfig = ReasoningConfig(),
                    methods: tuple[str, ...] = METHODS) -> tuple[list[dict], list[Problem]]:
    """Run every method on the same seeded problems."""
    problems, exemplars = problem_sets(config)
    return [run_method(model, tokenizer, problems, m, config, exemplars) for m in methods], problems
