"""Reasoning methods compared on Persian word problems (hw5.P4): direct answer, zero-shot chain of thought
(Kojima et al. 2022, "Large Language Models are Zero-Shot Reasoners"), few-shot chain of thought (Wei et al.
2022, "Chain-of-Thought Prompting Elicits Reasoning in Large Language Models") and self-consistency (Wang et
al. 2023, "Self-Consistency Improves Chain of Thought Reasoning in Language Models": k sampled chains,
majority vote over their final answers).

Each method reports accuracy, generated tokens and wall time; self-consistency also reports accuracy against
k from one set of k_max samples (the first k chains of each problem are voted on).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .word_problems import Problem, extract_answer, generate_problems, majority_vote

METHODS = ("direct", "zero_shot_cot", "few_shot_cot", "self_consistency")
SYSTEM = "تو یک دستیار ریاضی دقیق هستی."  # "you are a careful math assistant"
DIRECT = "فقط عدد پاسخ را بنویس، بدون توضیح.\nپاسخ:"  # "write only the number"
COT = "بیایید گام به گام فکر کنیم و در پایان بنویسیم «پاسخ: عدد»."  # "let's think step by step ... 'answer: N'"


@dataclass(frozen=True)
class ReasoningConfig:
    num_problems: int = 30
    levels: tuple[int, ...] = (1, 2, 3)
    num_shots: int = 3
    k: int = 5  # self-consistency chains
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 160
    direct_max_new_tokens: int = 12
    batch_size: int = 8
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
             sample: bool = False, temperature: float = 0.7, top_p: float = 0.95, batch_size: int = 8,
             seed: int = 0) -> tuple[list[list[str]], int]:
    """Completions (``num_return_sequences`` per prompt) and the number of generated (non-pad) tokens."""
    device = next(model.parameters()).device
    tokenizer.padding_side = "left"  # generation continues from the right edge
    outputs, generated = [], 0
    torch.manual_seed(seed)
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
        kwargs = dict(max_new_tokens=max_new_tokens, num_return_sequences=num_return_sequences,
                      pad_token_id=tokenizer.pad_token_id, do_sample=sample)
        kwargs.update(temperature=temperature, top_p=top_p) if sample else kwargs.update(temperature=None,
                                                                                          top_p=None, top_k=None)
        out = model.generate(**batch, **kwargs)
        new = out[:, batch["input_ids"].shape[1]:]
        generated += int((new != tokenizer.pad_token_id).sum())
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        outputs += [texts[i:i + num_return_sequences] for i in range(0, len(texts), num_return_sequences)]
    return outputs, generated


def run_method(model, tokenizer, problems: list[Problem], method: str, config: ReasoningConfig = ReasoningConfig(),
               exemplars: list[Problem] = ()) -> dict:
    """Accuracy, tokens and seconds of one method; ``answers`` holds every chain's extracted answer."""
    prompts = [build_prompt(tokenizer, p, method, exemplars) for p in problems]
    sc = method == "self_consistency"
    tic = time.perf_counter()
    texts, tokens = generate(model, tokenizer, prompts,
                             max_new_tokens=config.direct_max_new_tokens if method == "direct"
                             else config.max_new_tokens,
                             num_return_sequences=config.k if sc else 1, sample=sc,
                             temperature=config.temperature, top_p=config.top_p, batch_size=config.batch_size,
                             seed=config.seed)
    seconds = time.perf_counter() - tic
    answers = [[extract_answer(t) for t in chains] for chains in texts]
    final = [majority_vote(a)[0] for a in answers]
    correct = [f is not None and abs(f - p.answer) < 1e-9 for f, p in zip(final, problems)]
    result = {"method": method, "accuracy": sum(correct) / max(len(problems), 1), "tokens": tokens,
              "tokens_per_problem": tokens / max(len(problems), 1), "seconds": seconds,
              "answered": sum(f is not None for f in final) / max(len(problems), 1),
              "answers": answers, "texts": texts}
    if sc:
        result["accuracy_vs_k"] = accuracy_vs_k(answers, problems)
    return result


def accuracy_vs_k(answers: list[list[float | None]], problems: list[Problem]) -> dict[int, float]:
    """Majority-vote accuracy using the first k chains of each problem, for k = 1..len(chains)."""
    k_max = min(len(a) for a in answers) if answers else 0
    out = {}
    for k in range(1, k_max + 1):
        votes = [majority_vote(a[:k])[0] for a in answers]
        out[k] = sum(v is not None and abs(v - p.answer) < 1e-9 for v, p in zip(votes, problems)) / len(problems)
    return out


def compare_methods(model, tokenizer, config: ReasoningConfig = ReasoningConfig(),
                    methods: tuple[str, ...] = METHODS) -> tuple[list[dict], list[Problem]]:
    """Run every method on the same seeded problems; exemplars come from a disjoint seed."""
    problems = generate_problems(config.num_problems, config.levels, seed=config.seed)
    exemplars = generate_problems(config.num_shots, config.levels, seed=config.seed + 10_000)
    rows = []
    for method in methods:
        rows.append(run_method(model, tokenizer, problems, method, config, exemplars))
    return rows, problems
