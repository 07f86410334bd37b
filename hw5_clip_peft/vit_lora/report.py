"""The prose of hw5.P5, written from a run's results (``experiment.LoraExperiment.results``).

Every number in these sentences comes from ``results``; every qualitative word ("within the timing noise",
"fell", "ranked 2nd") is decided here from those numbers, so the text stays true for whatever a run measured.
In the quick profile (a tiny random-weight ViT) accuracies are stated as pipeline checks, not results. The
notebook shows these sections one by one with ``display(Markdown(...))``; the CLI writes them all to
``report.md`` (:func:`report_markdown`).
"""
from __future__ import annotations

from common import markdown_table

FLOAT32_BYTES = 4


def _pct(part: float, whole: float) -> float:
    return 100.0 * part / whole


def _tiny(results: dict) -> bool:
    return results["settings"]["model"] == "tiny"


def data_text(results: dict) -> str:
    d = results["data"]
    held = ", ".join(f"`{name}`" for name in d["held_out"]) or "none"
    return (f"**Data.** `{d['source']}`: {d['train']:,} training and {d['val']:,} validation photos from "
            f"{d['classes_with_images']} of the {d['classes']} classes (the head is {d['classes']}-way). "
            f"Held out for \"predict a new image\", removed from the training split before training and not in "
            f"the validation split: {held}.")


def counts_text(results: dict) -> str:
    lo, m, vb = results["lora"], results["model"], results["vit_base_counts"]
    head = m["hidden_size"] * m["num_labels"] + m["num_labels"]
    vb_r = vb["lora_trainable"][str(lo["r"])]
    text = (f"**Trainable parameters.** LoRA r = {lo['r']} on {' and '.join(lo['target_modules'])} plus the "
            f"new head: {lo['trainable']:,} trainable parameters = {_pct(lo['trainable'], lo['base']):.2f} % of "
            f"the {lo['base']:,} parameters of the base model (backbone + new head); the closed form "
            f"`L·2·r·2d + d·K + K` gives {lo['formula']:,}. Every percentage in this report uses that denominator "
            f"(PEFT's own \"all params\", {lo['peft_total']:,}, also counts the LoRA matrices and the frozen "
            f"original head kept beside its trained copy). For ViT-Base/16 ({vb['base']:,} parameters with "
            f"this head) the same LoRA trains {vb_r:,} = {_pct(vb_r, vb['base']):.2f} %: in float32, "
            f"{vb_r * FLOAT32_BYTES / 1e6:.2f} MB per task against {vb['base'] * FLOAT32_BYTES / 1e6:.0f} MB for a "
            f"fully fine-tuned copy, so {vb['base'] // vb_r} such tasks take the disk of one full copy.")
    if _tiny(results):
        text += (f" The tiny model's share is far larger because the {m['num_labels']}-way head alone "
                 f"({head:,} parameters) is {_pct(head, lo['base']):.1f} % of it: the ratio is a property of "
                 f"the model's size.")
    return text


def training_text(results: dict) -> str:
    t, d = results["training"], results["data"]
    epochs = t["epochs"]
    first, last = epochs[0]["train_loss"], epochs[-1]["train_loss"]
    trend = "fell" if last < first else "did not fall"
    correct = round(t["best_val_accuracy"] * d["val"])
    chance = 1 / d["classes_with_images"]
    loss = f"The training loss {trend} from {first:.3f} (epoch 1) to {last:.3f} (epoch {len(epochs)})."
    if _tiny(results):
        return (f"**Training (pipeline check, not a result).** A random-weight tiny ViT trained on "
                f"{d['train']} photos reached a best validation accuracy of {t['best_val_accuracy']:.3f} "
                f"({correct} of {d['val']} photos) at epoch {t['best_epoch']}; guessing among the "
                f"{d['classes_with_images']} classes present would give {chance:.3f}, and each validation photo "
                f"is worth {100 / d['val']:.0f} points. {loss} This checks that the Trainer, PEFT and the "
                f"data path run end to end, nothing more.")
    return (f"**Training.** `{results['model']['name']}` with LoRA reached a best validation top-1 of "
            f"{t['best_val_accuracy']:.4f} ({correct:,} of {d['val']:,} photos) at epoch {t['best_epoch']} of "
            f"{len(epochs)}, trained on {d['train']:,} photos in {t['seconds']:.0f} s on {results['hardware']}. "
            f"{loss}")


def prediction_text(results: dict) -> str:
    parts = []
    for row in results["prediction"]:
        top = ", ".join(f"{p['label']} ({p['probability']:.3f})" for p in row["top"])
        rank = (f"the true class is ranked {row['true_rank']} of {len(row['top'])}" if row["true_rank"]
                else f"the true class is not among the top {len(row['top'])}")
        parts.append(f"`{row['image']}` (true class {row['true_label']}): {top}; {rank}.")
    note = " With random weights the ranking is a pipeline check." if _tiny(results) else ""
    return "**Prediction of a held-out photo.** " + " ".join(parts) + note


def _latency_reading(section: dict, batch: int) -> str:
    rows = {r["model"]: r for r in section["latency"] if r["batch"] == batch}
    key = f"{section['clock']}_ms"
    base = rows["base"][key]
    noise = max(_pct(r["spread_ms"], r[key]) for r in rows.values())
    unmerged = _pct(rows["LoRA unmerged"][key] - base, base)
    merged = _pct(rows["LoRA merged"][key] - base, base)

    def verdict(delta: float) -> str:
        return "within" if abs(delta) <= noise else "beyond"

    return (f"at batch {batch} the base model takes {base:.2f} ms; unmerged LoRA {unmerged:+.1f} % "
            f"({verdict(unmerged)} the {noise:.1f} % spread between rounds), merged {merged:+.1f} % "
            f"({verdict(merged)} it)")


def merge_text(results: dict) -> str:
    m = results["merge"]
    status = "passes" if m["passed"] else "FAILS"
    clock = ("CPU time of this process on one thread" if m["clock"] == "cpu" else "wall clock")
    batches = sorted({r["batch"] for r in m["latency"]})
    text = (f"**Merging.** The merge check {status}: max |Δlogit| between the merged and the unmerged model is "
            f"{m['max_abs_gap']:.2e} against a tolerance of {m['tolerance']:.1e}, while the unmerged model and "
            f"the base model (adapters off) differ by {m['unmerged_vs_base_gap']:.3f}, so the check compares "
            f"models that really differ. {m['lora_tensors_left']} LoRA tensors remain after merging. "
            f"Latency ({clock}, median of rounds): "
            + "; ".join(_latency_reading(m, b) for b in batches) + ".")
    vb = results.get("vit_base_shapes")
    if vb:
        d = results["vit_base_counts"]["hidden_size"]
        flops = _pct(2 * vb["r"] * 2 * d, 12 * d * d)
        text += (f"\n\n**At ViT-Base/16 shapes** (random weights and a random LoRA B, r = {vb['r']}): the merge "
                 f"gap is {vb['max_abs_gap']:.2e} (tolerance {vb['tolerance']:.1e}, "
                 f"{'passed' if vb['passed'] else 'FAILED'}); the adapters change the logits by "
                 f"{vb['unmerged_vs_base_gap']:.3f}. Latency: {_latency_reading(vb, 1)}. The adapters add "
                 f"`2 projections × r × 2d` multiply-adds per token per block against about `12·d²` for the "
                 f"block's own linear layers, {flops:.2f} % more at d = {d}; what is measured beyond that is "
                 f"per-call overhead (dispatch on a CPU, kernel launches on a GPU), which weighs most on a "
                 f"small model at batch 1.")
    return text


def compare_text(results: dict) -> str:
    c = results.get("compare")
    if not c:
        return "**Comparison.** Not run (`--no-compare`)."
    by = {r["method"]: r for r in c["rows"]}
    lora = [m for m in by if m.startswith("LoRA")]
    best = max(by.values(), key=lambda r: r["val_accuracy"])
    full, head = by["full"], by["head-only"]
    top_lora = by[lora[-1]]
    sizes = (f"Stored per task: head-only {head['checkpoint_MB']:.3g} MB, {top_lora['method']} "
             f"{top_lora['checkpoint_MB']:.3g} MB, full {full['checkpoint_MB']:.3g} MB "
             f"({full['checkpoint_MB'] / top_lora['checkpoint_MB']:.0f}x the adapter). Peak training memory "
             f"above the loaded model: head-only {head['peak_train_MB']:.3g} MB, {top_lora['method']} "
             f"{top_lora['peak_train_MB']:.3g} MB, full {full['peak_train_MB']:.3g} MB. Seconds per epoch: "
             f"head-only {head['s_per_epoch']:.3g}, {top_lora['method']} {top_lora['s_per_epoch']:.3g}, full "
             f"{full['s_per_epoch']:.3g}.")
    trained = ", ".join(f"{m} {by[m]['trainable_%']:.2f} %" for m in by)
    if _tiny(results):
        return (f"**Comparison ({c['epochs']} epochs each; pipeline check on the tiny random model).** Trainable "
                f"share of the base model: {trained}. {sizes} On this model per-step overhead and data loading "
                f"swamp the differences in time, and the accuracies (best: {best['method']} "
                f"{best['val_accuracy']:.3f} on {c['val']} photos) are those of random weights, not results.")
    gap = full["val_accuracy"] - top_lora["val_accuracy"]
    speed = (f"{top_lora['method']} took {top_lora['s_per_epoch'] / full['s_per_epoch']:.2f} of full "
             f"fine-tuning's time per epoch while training {top_lora['trainable'] / full['trainable']:.4f} of its "
             f"parameters.")
    return (f"**Comparison ({c['epochs']} epochs each, {c['train']:,} training / {c['val']:,} validation "
            f"photos).** Trainable share of the base model: {trained}. Best validation accuracy: "
            f"{best['method']} with {best['val_accuracy']:.4f}; {top_lora['method']} reached "
            f"{top_lora['val_accuracy']:.4f}, {abs(gap):.4f} {'below' if gap > 0 else 'above or equal to'} full "
            f"fine-tuning ({full['val_accuracy']:.4f}), and head-only {head['val_accuracy']:.4f}. {sizes} {speed}")


def vit_base_table(results: dict) -> list[dict]:
    """Head-only, LoRA per rank and full fine-tuning at ViT-Base/16 shapes: trainable count, share, float32 MB."""
    vb = results["vit_base_counts"]
    rows = [{"method": "head-only", "trainable": vb["head"]}]
    rows += [{"method": f"LoRA r={r}", "trainable": n} for r, n in sorted(vb["lora_trainable"].items(),
                                                                          key=lambda kv: int(kv[0]))]
    rows += [{"method": "full", "trainable": vb["base"]}]
    for row in rows:
        row["% of base"] = _pct(row["trainable"], vb["base"])
        row["float32 MB"] = row["trainable"] * FLOAT32_BYTES / 1e6
    return rows


def report_markdown(results: dict) -> str:
    """The whole report: settings, every section's prose and the tables."""
    s = results["settings"]
    kind = ("quick profile: a tiny random-weight ViT, so accuracies are pipeline checks"
            if _tiny(results) else f"{results['profile']} profile")
    parts = [f"# hw5.P5 — ViT + LoRA on Food-101 ({kind})",
             f"Model `{s['model']}`, data `{s['data']}`, LoRA r = {s['rank']}, α = {s['alpha']}, {s['epochs']} "
             f"epochs, batch {s['batch_size']}, lr {s['lr']}, seed {s['seed']}; {results['hardware']}; settings "
             f"key `{results['settings_key']}`.",
             data_text(results), counts_text(results),
             markdown_table(vit_base_table(results), floatfmt=".3f"),
             training_text(results), markdown_table(results["training"]["epochs"], floatfmt=".4f"),
             prediction_text(results), merge_text(results), markdown_table(results["merge"]["latency"],
                                                                           floatfmt=".3f")]
    if results.get("compare"):
        parts += [compare_text(results), markdown_table(results["compare"]["rows"], floatfmt=".4g")]
    return "\n\n".join(parts) + "\n"
