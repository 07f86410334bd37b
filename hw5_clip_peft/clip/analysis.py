"""The written analysis of a run, built from its ``results.json`` dict (so it always describes that run).

``findings(results)`` returns Markdown bullets. In the quick profile (tiny random-weight models) they are
pipeline checks: what ran, over how many classes, and properties that hold by construction, stated next to
chance. In the full profile they are the comparisons the homework asks for, each direction ("higher",
"lower") computed from the numbers; a surprising outcome (XXLarge below Base, a linear probe under
zero-shot) is reported as what happened, never asserted away.
"""
from __future__ import annotations


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _pts(diff: float) -> str:
    return f"{100 * abs(diff):.1f} points"


def _cmp(a: float, b: float) -> str:
    """'higher than' / 'lower than' / 'equal to' for a vs b."""
    if abs(a - b) < 1e-12:
        return "equal to"
    return "higher than" if a > b else "lower than"


def _head(results: dict, method_prefix: str) -> dict | None:
    return next((r for r in results["comparison"] if r["method"].startswith(method_prefix)), None)


def pipeline_findings(results: dict) -> list[str]:
    """Quick profile: what the run checked. Differences between methods are noise here."""
    k, chance = results["num_classes"], results["chance"]
    tops = [r["test_top1"] for r in results["comparison"]]
    out = [f"**Pipeline check, not a result.** Both models are tiny ConvNeXt CLIPs with random weights, so no "
           f"row says anything about CLIP. Chance is 1/{k} = {chance:.4f} over the {k} class names "
           f"({results['classes_with_images']} of them have images in this data); test top-1 across the "
           f"{len(tops)} methods ran from {min(tops):.3f} to {max(tops):.3f}, on "
           f"{results['test_images']} test images."]
    zs = results["zero_shot"]
    out.append(f"(a)/(b): {len(zs['sweep'])} single templates and {len(zs['ensembles'])} ensembles were "
               f"encoded and scored; the ensemble chosen on validation was '{zs['best_ensemble']['ensemble']}'. "
               f"Class names were compared in {len(results['name_styles'])} styles "
               f"({', '.join(r['names'] for r in results['name_styles'])}).")
    worst = results["worst_class"]
    out.append(f"(c): the per-class table has all {len(results['per_class'])} classes (also in per_class.csv); "
               f"the lowest F1 among classes with test images is {worst['class']} ({worst['f1']:.3f}); its "
               f"template search chose on validation ({len(results['worst_class_search']['rows'])} candidates).")
    for name, run in results["head_training"].items():
        fell = "fell" if run["last_train_loss"] < run["first_train_loss"] else "did not fall"
        out.append(f"{name}: training loss {fell} ({run['first_train_loss']:.3f} -> {run['last_train_loss']:.3f} "
                   f"over {run['epochs_run']} epochs); best validation top-1 {run['best_val_acc']:.3f} vs "
                   f"{run['init_val_acc']:.3f} before training.")
    if results.get("large_zero_shot"):
        out.append(f"(f): {results['large']['label']} ran parts (a) and (b) on the same splits.")
    return out


def homework_findings(results: dict) -> list[str]:
    """Full profile: the comparisons of parts (a)-(f), directions computed from this run's numbers."""
    zs, base = results["zero_shot"], results["base"]["label"]
    single, best, ens = zs["single"], zs["best_single"], zs["best_ensemble"]
    worst_t = min(zs["sweep"], key=lambda r: r["test_top1"])
    out = [f"**(a)** {base}, template '{single['template']}': test top-1 {_pct(single['test_top1'])}, top-5 "
           f"{_pct(single['test_top5'])}, against chance {_pct(results['chance'])} over "
           f"{results['num_classes']} breeds."]
    out.append(f"**(b)** The best single template on validation, '{best['template']}', scores "
               f"{_pct(best['test_top1'])} on test, {_cmp(best['test_top1'], single['test_top1'])} part (a)'s "
               f"template by {_pts(best['test_top1'] - single['test_top1'])}; the weakest, '{worst_t['template']}', "
               f"{_pct(worst_t['test_top1'])}. The ensemble chosen on validation ('{ens['ensemble']}', "
               f"{ens['templates']} templates) reaches {_pct(ens['test_top1'])}, "
               f"{_cmp(ens['test_top1'], best['test_top1'])} the best single template by "
               f"{_pts(ens['test_top1'] - best['test_top1'])}, without choosing a template on data.")
    styles = {r["names"]: r for r in results["name_styles"]}
    if {"curated", "raw"} <= set(styles):
        c, r = styles["curated"], styles["raw"]
        changes = sorted(results.get("name_recall_changes", []),
                         key=lambda x: x["recall curated"] - x["recall raw"])  # largest loss first

        def said(x):
            return f"{x['raw']} -> {x['curated']} ({_pct(x['recall raw'])} -> {_pct(x['recall curated'])})"

        gains = [said(x) for x in changes[::-1][:3] if x["recall curated"] > x["recall raw"]]
        losses = [said(x) for x in changes[:3] if x["recall curated"] < x["recall raw"]]
        out.append(f"**Class names.** With open_clip's curated ImageNet names, part (a)'s template gives "
                   f"{_pct(c['single test_top1'])}, {_cmp(c['single test_top1'], r['single test_top1'])} the raw "
                   f"WordNet folder names ({_pct(r['single test_top1'])}); with the best ensemble "
                   f"{_pct(c['ensemble test_top1'])} vs {_pct(r['ensemble test_top1'])}. "
                   + (f"Largest recall gains from renaming: {'; '.join(gains)}. " if gains else "")
                   + (f"Largest losses: {'; '.join(losses)}." if losses else ""))
    worst, search = results["worst_class"], results["worst_class_search"]
    confused = ", ".join(f"{name} ({n})" for name, n in results["confused_with"]) or "no single other breed"
    on_val, on_test, baseline = search["chosen_on_val"], search["chosen_on_test"], search["baseline"]
    sel = results["per_class_selection"]
    out.append(f"**(c)** Worst F1: {worst['class']} (F1 {worst['f1']:.3f}, precision {worst['precision']:.3f}, "
               f"recall {worst['recall']:.3f}, {worst['support']} test images); its images are most often taken "
               f"for {confused}. The template chosen for it on validation, '{on_val['template']}', gives test F1 "
               f"{on_val['test_f1']:.3f} vs {baseline['test_f1']:.3f} unchanged; choosing on test would have shown "
               f"{on_test['test_f1']:.3f}, an optimism of {on_test['test_f1'] - on_val['test_f1']:.3f} that a "
               f"validation choice does not have. One template per class for every class (chosen on validation) "
               f"gives test top-1 {_pct(sel['test_top1'])} vs {_pct(single['test_top1'])} with one template.")
    d, e, coop = _head(results, "(d)"), _head(results, "(e)"), _head(results, "CoOp")
    parts = []
    for label, row in (("class embeddings (d)", d), ("linear probe (e)", e), ("CoOp", coop)):
        if row:
            parts.append(f"{label} {_pct(row['test_top1'])} ({_cmp(row['test_top1'], ens['test_top1'])} the "
                         f"zero-shot ensemble it can start from; train top-1 {_pct(row['train_top1'])})")
    out.append("**(d), (e)** On all training images: " + "; ".join(parts) + ". The gap between train and test "
               "top-1 is what each head memorised.")
    shots = results.get("few_shot") or []
    if shots:
        crossing = next((r["shots"] for r in shots
                         if r["linear probe test_top1"] >= r["class embeddings test_top1"]), None)
        out.append("**Few-shot.** " + (
            f"The linear probe first matches the class-embedding head at {crossing} images per class."
            if crossing is not None else
            f"The class-embedding head stays ahead of the linear probe up to {shots[-1]['shots']} images per "
            f"class: its zero-shot start is worth more than that many labels."))
    large = results.get("large_zero_shot")
    if large:
        name = results["large"]["label"]
        out.append(f"**(f)** {name}: one template {_pct(large['single']['test_top1'])}, "
                   f"{_cmp(large['single']['test_top1'], single['test_top1'])} {base} by "
                   f"{_pts(large['single']['test_top1'] - single['test_top1'])}; best ensemble "
                   f"{_pct(large['best_ensemble']['test_top1'])} vs {_pct(ens['test_top1'])}."
                   + ("" if large["single"]["test_top1"] > single["test_top1"] else
                      " The larger model did not win here: check the weights (logit scale "
                      f"{results['large']['logit_scale']:.1f}) and preprocessing before reading it as a result."))
    return out


def findings(results: dict) -> str:
    """The analysis of ``results`` as Markdown bullets."""
    bullets = pipeline_findings(results) if results["pipeline_check"] else homework_findings(results)
    return "\n".join(f"- {b}" for b in bullets)
