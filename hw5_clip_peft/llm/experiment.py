"""The hw5.P4 experiment, as the CLI (:mod:`.run`) and the notebook both run it: soft prompt vs zero-shot
sentiment, then the four reasoning methods, with results as one JSON-able dict.

Each stage (the sentiment part, each reasoning method) is stored under ``<out>/stages/`` in a file named by
:func:`common.io.settings_key` of every setting that changes its result, so rerunning the same command after
a kill (Ctrl-C) resumes after the last finished stage, and a run with other settings never reuses it.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from common import count_parameters, read_json, save_atomic, seed_everything, settings_key, write_json_atomic
from common.pretrained import downloads_allowed

from .llm_models import REASONING_MODEL, SENTIMENT_MODEL, load_causal_lm
from .reasoning import METHODS, ReasoningConfig, problem_sets, run_method
from .reviews import Review, balanced_subset, class_counts, split_reviews
from .soft_prompt import (INIT_TEXT, ZERO_SHOT_INSTRUCTION, SoftPromptConfig, evaluate_sentiment,
                          make_soft_prompt_model, nearest_tokens, train_soft_prompt)
from .twins import save_twin
from .word_problems import LEVELS

PARTS = ("sentiment", "reasoning")
TWIN = "twin"  # a model source meaning "the tiny random-weight twin, built here"


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that changes a result. ``sentiment_model``/``reasoning_model``: a folder or hub id, or
    :data:`TWIN`; ``reviews``: a TSV path or hub dataset id (see :mod:`.reviews`)."""

    sentiment_model: str = TWIN
    reasoning_model: str = TWIN
    reviews: str = ""
    per_class: int | None = None  # reviews per class in the balanced subset (None: as many as the data has)
    val_fraction: float = 0.3
    soft_prompt: SoftPromptConfig = field(default_factory=SoftPromptConfig)
    reasoning: ReasoningConfig = field(default_factory=ReasoningConfig)
    parts: tuple[str, ...] = PARTS
    seed: int = 0


def profile_config(full: bool, **overrides) -> ExperimentConfig:
    """The profile's defaults: ``full`` is the homework (the real models, 500 reviews per class, 60 problems,
    k = 10); ``quick`` is a CPU pipeline check on tiny twins and the committed sample."""
    if full:
        base = ExperimentConfig(sentiment_model=SENTIMENT_MODEL, reasoning_model=REASONING_MODEL,
                                per_class=500,
                                soft_prompt=SoftPromptConfig(num_virtual_tokens=20, num_epochs=5, lr=3e-2,
                                                             batch_size=16),
                                reasoning=ReasoningConfig(num_problems=60, k=10, max_new_tokens=256))
    else:
        base = ExperimentConfig(soft_prompt=SoftPromptConfig(num_virtual_tokens=8, num_epochs=6, lr=0.1),
                                reasoning=ReasoningConfig(num_problems=6, k=5, max_new_tokens=24,
                                                          direct_max_new_tokens=6))
    return replace(base, **overrides)


def _stage(path: Path, compute: Callable[[], dict], log: Callable[[str], None]) -> dict:
    if path.is_file():
        log(f"  reusing {path.name} (same settings, finished earlier)")
        return read_json(path, "stage record")
    result = compute()
    write_json_atomic(path, result)
    return result


def _model_source(source: str, hub_id: str, scratch: Path, seed: int) -> tuple[str, bool]:
    """``(loadable source, is_twin)``: the twin is written to ``scratch`` and loaded like a download."""
    if source != TWIN:
        return source, False
    return str(save_twin(scratch / hub_id.split("/")[-1], hub_id, size="tiny", seed=seed)), True


def run_sentiment(config: ExperimentConfig, reviews: list[Review], device, scratch: Path, out_dir: Path,
                  key: str, progress: bool = False, log: Callable[[str], None] = print) -> dict:
    """Zero-shot instruction vs a trained soft prompt on a shuffled, class-balanced validation split."""
    tic = time.perf_counter()
    sp = config.soft_prompt
    source, twin = _model_source(config.sentiment_model, SENTIMENT_MODEL, scratch, config.seed)
    model, tokenizer = load_causal_lm(source, device=device, what="sentiment model", progress=progress)
    subset = balanced_subset(reviews, config.per_class, config.seed)
    train, val = split_reviews(subset, config.val_fraction, config.seed)
    data = {"available": class_counts(reviews), "used": class_counts(subset), "train": class_counts(train),
            "validation": class_counts(val)}
    log(f"  reviews: {data['available']} available, balanced subset {data['used']}, "
        f"train {data['train']}, validation {data['validation']}")
    seed_everything(config.seed)
    zero_shot = evaluate_sentiment(model, tokenizer, val, ZERO_SHOT_INSTRUCTION, sp.batch_size,
                                   sp.max_text_tokens)
    base_params = count_parameters(model)
    peft_model, trainable, total = make_soft_prompt_model(model, source, sp, not downloads_allowed())
    log(f"  soft prompt: {trainable:,} trainable of {total:,} parameters; training {sp.num_epochs} epochs")
    history = train_soft_prompt(peft_model, tokenizer, train, val, sp, device)
    tuned = evaluate_sentiment(peft_model, tokenizer, val, "", sp.batch_size, sp.max_text_tokens)
    prompt = peft_model.get_prompt_embedding_to_save(adapter_name="default").detach().float().cpu()
    save_atomic({"prompt_embeddings": prompt, "num_virtual_tokens": sp.num_virtual_tokens, "model": source,
                 "settings_key": key}, out_dir / f"soft_prompt-{key}.pt")
    return {"model": config.sentiment_model, "twin": twin, "data": data,
            "num_virtual_tokens": sp.num_virtual_tokens,
            "parameters": {"base": base_params, "trainable": trainable, "total": total},
            "zero_shot": zero_shot, "soft_prompt": tuned, "history": history,
            "nearest_tokens": nearest_tokens(peft_model, tokenizer, k=3),
            "example": {"text": train[0].text, "label": train[0].label}, "init_text": INIT_TEXT,
            "seconds": time.perf_counter() - tic}


def run_reasoning(config: ExperimentConfig, device, scratch: Path, stage_dir: Path, progress: bool = False,
                  log: Callable[[str], None] = print) -> dict:
    """Every method on the same seeded problems; one stage file per method."""
    rc = config.reasoning
    problems, exemplars = problem_sets(rc)
    loaded = {}

    def method_stage(method: str) -> dict:
        if not loaded:
            source, twin = _model_source(config.reasoning_model, REASONING_MODEL, scratch, config.seed)
            model, tokenizer = load_causal_lm(source, device=device, what="reasoning model",
                                              progress=progress)
            loaded.update(model=model, tokenizer=tokenizer, twin=twin)
        log(f"  {method} on {len(problems)} problems")
        row = run_method(loaded["model"], loaded["tokenizer"], problems, method, rc, exemplars)
        return {**row, "twin": loaded["twin"]}

    key = settings_key({"model": config.reasoning_model, "reasoning": asdict(rc), "seed": config.seed})
    rows = [_stage(stage_dir / f"reasoning-{m}-{key}.json", lambda m=m: method_stage(m), log)
            for m in METHODS]
    return {"model": config.reasoning_model, "twin": rows[0]["twin"],
            "levels": {str(k): v for k, v in LEVELS.items()},
            "problems_per_level": {str(lv): sum(p.level == lv for p in problems) for lv in rc.levels},
            "exemplars": len(exemplars), "k": rc.k,
            "methods": [{k: v for k, v in r.items() if k not in ("texts", "answers", "twin")} for r in rows]}


def run_experiment(config: ExperimentConfig, reviews: list[Review] | None, out_dir: Path, device="cpu",
                   progress: bool = False, log: Callable[[str], None] = print) -> dict:
    """Run the requested parts; return the results (also written by the caller). ``reviews`` is needed
    only for the sentiment part."""
    out_dir = Path(out_dir)
    stage_dir = out_dir / "stages"
    device = torch.device(device)
    results = {"config": {**asdict(config), "device": str(device)}}
    with tempfile.TemporaryDirectory(prefix="llm_twins_") as scratch:
        if "sentiment" in config.parts:
            log("sentiment: zero-shot instruction vs soft prompt")
            settings = {k: v for k, v in asdict(config).items()
                        if k not in ("reasoning", "reasoning_model", "parts")}
            # the reviews' content too: an edited TSV at the same path is other data
            settings["reviews_content"] = settings_key([[r.text, r.label] for r in reviews], length=16)
            key = settings_key(settings)
            results["sentiment"] = _stage(
                stage_dir / f"sentiment-{key}.json",
                lambda: run_sentiment(config, reviews, device, Path(scratch), out_dir, key, progress, log),
                log)
        if "reasoning" in config.parts:
            log("reasoning: direct, zero-shot CoT, few-shot CoT, self-consistency")
            results["reasoning"] = run_reasoning(config, device, Path(scratch), stage_dir, progress, log)
    return results
