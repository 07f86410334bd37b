"""Zero-shot classification from cached features: classifier construction, template sweeps, per-class search.

Shapes: image features ``X`` (N, D); text embeddings per template ``text_emb`` (T, K, D), L2-normalised;
a classifier is (K, D) with unit rows; logits are ``logit_scale * normalize(X) @ classifier.T`` (N, K).
Prompt ensembling follows the CLIP paper (Radford et al., 2021, Sec. 3.1.4): average the *normalised* text
embeddings of all templates of a class, then normalise the mean again.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from common import accuracy, per_class_report, top_k_accuracy

from .clip_models import ClipBundle
from .features import FeatureCache, encode_texts
from .templates import fill

Pair = tuple[torch.Tensor, torch.Tensor]  # (X (N, D), y (N,))


def text_embeddings(bundle: ClipBundle, classnames: Sequence[str], templates: Sequence[str],
                    cache: FeatureCache | None = None) -> torch.Tensor:
    """(T, K, D) unit text embeddings, one per (template, class), encoded in one batched (cached) pass."""
    prompts = [p for t in templates for p in fill(t, classnames)]
    emb = encode_texts(bundle, prompts, cache)
    return F.normalize(emb.reshape(len(templates), len(classnames), -1), dim=-1)


def build_classifier(text_emb: torch.Tensor) -> torch.Tensor:
    """(K, D) unit-row classifier from (T, K, D) or (K, D) text embeddings: normalise, average, normalise."""
    if text_emb.dim() == 2:
        text_emb = text_emb[None]
    return F.normalize(F.normalize(text_emb, dim=-1).mean(0), dim=-1)


def zero_shot_logits(X: torch.Tensor, classifier: torch.Tensor, logit_scale: float = 100.0) -> torch.Tensor:
    """(N, K) scaled cosine similarities of image features ``X`` (N, D) and class rows (K, D)."""
    return logit_scale * F.normalize(X.float(), dim=-1) @ classifier.float().T


def top1_top5(logits: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """``{"top1": ..., "top5": ...}`` of (N, K) logits (``common.metrics``)."""
    return {"top1": accuracy(logits, y), "top5": top_k_accuracy(logits, y, 5)}


def class_f1(pred: torch.Tensor, y: torch.Tensor, num_classes: int) -> list[float]:
    """F1 of each of ``num_classes`` classes from (N,) predictions (``common.metrics.per_class_report``)."""
    return [row["f1"] for row in per_class_report(y, pred, [str(k) for k in range(num_classes)])]


def template_sweep(X: torch.Tensor, y: torch.Tensor, text_emb: torch.Tensor, templates: Sequence[str],
                   logit_scale: float = 100.0, ensemble: bool = True) -> list[dict]:
    """One row per single template (``template``, ``top1``, ``top5``), plus the ensemble of them all.

    One (T, N, K) product for all templates, no Python loop over images.
    """
    if text_emb.shape[0] != len(templates):
        raise ValueError(f"{text_emb.shape[0]} template embeddings but {len(templates)} templates")
    Xn = F.normalize(X.float(), dim=-1)
    logits = logit_scale * torch.einsum("nd,tkd->tnk", Xn, text_emb.float())
    rows = [{"template": t, **top1_top5(logits[i], y)} for i, t in enumerate(templates)]
    if ensemble:
        acc = top1_top5(zero_shot_logits(X, build_classifier(text_emb), logit_scale), y)
        rows.append({"template": f"ensemble of {len(templates)}", **acc})
    return rows


# ---------------------------------------------------------------------------------------------- per class
def class_f1_matrix(X: torch.Tensor, y: torch.Tensor, classifier: torch.Tensor, candidates: torch.Tensor,
                    logit_scale: float = 100.0, chunk: int = 8) -> torch.Tensor:
    """(C, K) F1 of class k when only row k of ``classifier`` is replaced by ``candidates[c, k]``.

    With one row changed, image n is predicted k iff its new score for k beats its best *other* score,
    so every (candidate, class) pair is scored at once from the top-2 of the base logits.
    """
    logits = zero_shot_logits(X, classifier, logit_scale)  # (N, K)
    top2 = logits.topk(2, dim=-1)
    K = logits.shape[1]
    is_top = top2.indices[:, :1] == torch.arange(K)  # (N, K): k is the current argmax
    best_other = torch.where(is_top, top2.values[:, 1:2], top2.values[:, :1])  # (N, K)
    truth = y[:, None] == torch.arange(K)  # (N, K)
    Xn = F.normalize(X.float(), dim=-1)
    rows = []
    for start in range(0, len(candidates), chunk):  # (c, N, K) at a time keeps memory bounded
        cand = logit_scale * torch.einsum("nd,ckd->cnk", Xn, candidates[start:start + chunk].float())
        pred_k = cand > best_other
        tp = (pred_k & truth).sum(1)
        fp = (pred_k & ~truth).sum(1)
        fn = (~pred_k & truth).sum(1)
        rows.append(torch.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn).clamp_min(1), 0.0))
    return torch.cat(rows).float()


def with_rows(classifier: torch.Tensor, candidates: torch.Tensor, choice: dict[int, int]) -> torch.Tensor:
    """A copy of ``classifier`` whose row k is ``candidates[choice[k], k]`` for each chosen class."""
    out = classifier.clone()
    for k, c in choice.items():
        out[k] = candidates[c, k]
    return out


@dataclass(frozen=True)
class ClassTemplateSearch:
    """Part (c): templates tried for one class, chosen on validation and (for contrast) on test."""

    cls: int
    rows: list[dict]  # per candidate: template, val_f1, test_f1, val_acc, test_acc
    baseline: dict  # the same fields for the unchanged classifier
    chosen_on_val: dict
    chosen_on_test: dict  # test-set tuning: an optimistic number, reported only to show the gap


def search_class_template(val: Pair, test: Pair, classifier: torch.Tensor, candidates: torch.Tensor,
                          templates: Sequence[str], cls: int, logit_scale: float = 100.0) -> ClassTemplateSearch:
    """Try every candidate template for class ``cls`` only; pick by validation F1 (ties: val accuracy)."""
    f1 = {name: class_f1_matrix(X, y, classifier, candidates, logit_scale)[:, cls]
          for name, (X, y) in (("val", val), ("test", test))}
    rows = []
    for c, template in enumerate(templates):
        W = with_rows(classifier, candidates, {cls: c})
        acc = {name: accuracy(zero_shot_logits(X, W, logit_scale), y)
               for name, (X, y) in (("val", val), ("test", test))}
        rows.append({"template": template, "val_f1": float(f1["val"][c]), "test_f1": float(f1["test"][c]),
                     "val_acc": acc["val"], "test_acc": acc["test"]})
    base = {"template": "(unchanged)"}
    for name, (X, y) in (("val", val), ("test", test)):
        pred = zero_shot_logits(X, classifier, logit_scale).argmax(1)
        base[f"{name}_f1"] = class_f1(pred, y, classifier.shape[0])[cls]
        base[f"{name}_acc"] = float((pred == y).float().mean())
    by_val = max(range(len(rows)), key=lambda i: (rows[i]["val_f1"], rows[i]["val_acc"], -i))
    by_test = max(range(len(rows)), key=lambda i: (rows[i]["test_f1"], rows[i]["test_acc"], -i))
    return ClassTemplateSearch(cls, rows, base, rows[by_val], rows[by_test])


def select_templates_per_class(X_val: torch.Tensor, y_val: torch.Tensor, classifier: torch.Tensor,
                               candidates: torch.Tensor, logit_scale: float = 100.0) -> dict[int, int]:
    """``{class: candidate}`` for the classes where some candidate beats the current row's validation F1.

    Each class is chosen independently against the unchanged others (one coordinate step, not a joint search).
    """
    f1 = class_f1_matrix(X_val, y_val, classifier, candidates, logit_scale)  # (C, K)
    pred = zero_shot_logits(X_val, classifier, logit_scale).argmax(1)
    base = class_f1(pred, y_val, classifier.shape[0])
    best, arg = f1.max(0)
    return {k: int(arg[k]) for k in range(len(base)) if best[k] > base[k]}
