"""Tables, analysis text and plots of an hw5.P4 run, built only from its results dict, so ``report.md``, the
notebook and the CLI state the same numbers and can never go stale.

With random-weight twins every number is labelled a pipeline check; with real models the analysis states
the comparisons the homework asks for, each computed from the results ("higher than ... in this run").
"""
from __future__ import annotations

import math

from common.metrics import markdown_table

from .llm_models import REASONING_MODEL, SENTIMENT_MODEL

METHOD_NAMES = {"direct": "direct answer", "zero_shot_cot": "zero-shot CoT", "few_shot_cot": "few-shot CoT",
                "self_consistency": "self-consistency"}


def model_label(part: dict, hub_id: str) -> str:
    """The model's name for headings: its id or folder, or what the twin stands in for."""
    return f"a tiny random-weight twin of {hub_id}" if part["twin"] else part["model"]


def _num(value) -> str:
    """An extracted answer as written: ``72`` rather than ``72.0``; ``None`` as "no number"."""
    if value is None:
        return "no number"
    return str(int(value)) if float(value).is_integer() else str(value)


def is_pipeline_check(results: dict) -> bool:
    return any(results.get(part, {}).get("twin") for part in ("sentiment", "reasoning"))


def _se(p: float, n: int) -> float:
    """Binomial standard error of an accuracy ``p`` measured on ``n`` examples."""
    return math.sqrt(max(p * (1 - p), 1e-12) / max(n, 1))


# ----------------------------------------------------------------------------------------------- tables
def balance_table(sentiment: dict) -> str:
    data = sentiment["data"]
    return markdown_table([{"reviews": name, **counts} for name, counts in data.items()])


def sentiment_table(sentiment: dict) -> str:
    p = sentiment["parameters"]
    rows = [{"method": "zero-shot instruction (frozen model)", "trainable params": 0,
             **sentiment["zero_shot"]},
            {"method": f"soft prompt ({sentiment['num_virtual_tokens']} virtual tokens)",
             "trainable params": p["trainable"], **sentiment["soft_prompt"]}]
    return markdown_table(rows, floatfmt=".3f")


def history_table(sentiment: dict) -> str:
    return markdown_table(sentiment["history"], floatfmt=".4f")


def nearest_table(sentiment: dict) -> str:
    return markdown_table([{"virtual token": i,
                            "nearest tokens (cosine)": ", ".join(f"{t!r} {s:.2f}" for t, s in row)}
                           for i, row in enumerate(sentiment["nearest_tokens"])])


def reasoning_table(reasoning: dict) -> str:
    """Accuracy per method and per level, plus overall accuracy, tokens and seconds."""
    rows = []
    for r in reasoning["methods"]:
        row = {"method": METHOD_NAMES[r["method"]]}
        row.update({f"level {lv}": acc for lv, acc in r["by_level"].items()})
        row.update({"overall": r["accuracy"], "answered": r["answered"],
                    "tokens / problem": r["tokens_per_problem"], "seconds": r["seconds"]})
        rows.append(row)
    return markdown_table(rows, floatfmt=".2f")


def levels_table(reasoning: dict) -> str:
    return markdown_table([{"level": lv, "problems": reasoning["problems_per_level"].get(lv, 0),
                            "definition": text} for lv, text in reasoning["levels"].items()])


def samples_markdown(reasoning: dict) -> str:
    """Each method's sample chains (shortened), with the gold answer and the method's final answer."""
    parts = []
    for r in reasoning["methods"]:
        parts.append(f"**{METHOD_NAMES[r['method']]}**")
        for s in r["samples"]:
            chain = " ".join(s["chain"].split()) or "(empty)"
            verdict = "correct" if s["correct"] else "wrong"
            extra = f", vote over {s['chains']} chains" if s["chains"] > 1 else ""
            parts.append(f"- level {s['level']}: {s['question']}  \n  gold {s['answer']}, answered "
                         f"{_num(s['final'])} ({verdict}{extra}); first chain: "
                         f"`{chain.replace('`', chr(39))}`")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------- analysis
def sentiment_analysis(sentiment: dict) -> str:
    zs, sp, hist = sentiment["zero_shot"], sentiment["soft_prompt"], sentiment["history"]
    n = sum(sentiment["data"]["validation"].values())
    p = sentiment["parameters"]
    share = 100 * p["trainable"] / p["total"]
    first, last = hist[0]["val_loss"], hist[-1]["val_loss"]
    loss = (f"Training moved the validation loss of the label word from {first:.4f} to {last:.4f} over "
            f"{len(hist)} epochs")
    if sentiment["twin"]:
        return (f"**Pipeline check, not a result.** Both numbers come from a random-weight twin of gpt2-fa: "
                f"accuracy {zs['accuracy']:.2f} (zero-shot) and {sp['accuracy']:.2f} (soft prompt) on {n} "
                f"balanced validation reviews are what an untrained model gives, near chance for two "
                f"classes. What the run verifies: the soft prompt's {p['trainable']:,} parameters "
                f"({share:.3f} % of {p['total']:,}) are the only ones trained, and they reach the loss. "
                f"{loss}.")
    diff = sp["accuracy"] - zs["accuracy"]
    noise = 2 * math.sqrt(_se(sp["accuracy"], n) ** 2 + _se(zs["accuracy"], n) ** 2)
    verdict = ("a difference larger than twice its standard error" if abs(diff) > noise
               else "a difference within twice its standard error, so not a clear one")
    compared = (f"{'higher' if diff > 0 else 'lower'} by {abs(diff):.3f}, {verdict} (±{noise:.3f})" if diff
                else "the same accuracy")
    text = (f"On {n} balanced validation reviews the trained soft prompt scores {sp['accuracy']:.3f} against "
            f"{zs['accuracy']:.3f} for the hand-written zero-shot instruction: {compared}. It trains "
            f"{p['trainable']:,} parameters, {share:.3f} % of the model. {loss}.")
    for name, r in (("zero-shot instruction", zs), ("soft prompt", sp)):
        if not 0.2 <= r["positive_rate"] <= 0.8:
            text += (f" The {name} answers mostly one label (predicted positive for "
                     f"{r['positive_rate']:.2f} of the reviews), so its accuracy reflects a label bias more "
                     f"than reading.")
    sims = [row[0][1] for row in sentiment["nearest_tokens"]]
    text += (f" The learned vectors' nearest vocabulary tokens have a mean cosine similarity of "
             f"{sum(sims) / len(sims):.2f}: the soft prompt is {'close to' if min(sims) > 0.9 else 'not'} a "
             f"sequence of real tokens.")
    return text


def reasoning_analysis(reasoning: dict) -> str:
    rows = {r["method"]: r for r in reasoning["methods"]}
    levels = list(reasoning["levels"])
    sc, cot = rows["self_consistency"], rows["zero_shot_cot"]
    curve = sc["accuracy_vs_k"]
    cost = sc["tokens"] / max(cot["tokens"], 1)
    if reasoning["twin"]:
        per_level = ", ".join(f"level {lv}: {reasoning['problems_per_level'][lv]}" for lv in levels)
        best = max(r["accuracy"] for r in rows.values())
        return (f"**Pipeline check, not a result.** The reasoning model is a random-weight twin of Qwen2.5, "
                f"so its accuracies (at most {best:.2f}) say nothing about the methods. What the run "
                f"verifies: the chat prompts of all four methods, greedy and sampled generation, answer "
                f"extraction and majority voting run end to end on the same problems ({per_level}); "
                f"self-consistency generated {cost:.1f} times the tokens of one zero-shot chain "
                f"(k = {reasoning['k']}).")
    top_acc = max(r["accuracy"] for r in rows.values())
    best = " and ".join(METHOD_NAMES[m] for m, r in rows.items() if r["accuracy"] == top_acc)
    lines = [f"Overall, the most accurate in this run: {best} ({top_acc:.2f}; direct answer "
             f"{rows['direct']['accuracy']:.2f})."]
    gains = {lv: rows["few_shot_cot"]["by_level"][lv] - rows["direct"]["by_level"][lv] for lv in levels}
    top = max(gains.values())
    where = [lv for lv, g in gains.items() if g == top]
    lines.append("Few-shot CoT minus direct answer, per level: "
                 + ", ".join(f"level {lv} {g:+.2f}" for lv, g in gains.items()) + "; "
                 + (f"the gain is largest at level {' and '.join(where)}"
                    + (" (the most operations: chains help where there are intermediate results to write "
                       "down)." if where == [levels[-1]] else ".")
                    if top > 0 else "few-shot CoT beats the direct answer at no level."))
    change = {m: r["by_level"][levels[-1]] - r["by_level"][levels[0]] for m, r in rows.items()}
    lines.append(f"Accuracy at level {levels[-1]} minus level {levels[0]}: "
                 + ", ".join(f"{METHOD_NAMES[m]} {d:+.2f}" for m, d in change.items()) + ".")
    lines.append(f"Self-consistency: accuracy {curve[0]:.2f} with one sampled chain and {curve[-1]:.2f} with "
                 f"{len(curve)} ({'higher' if curve[-1] > curve[0] else 'not higher'}), for {cost:.1f} times "
                 f"the tokens of one greedy chain and {sc['seconds'] / max(cot['seconds'], 1e-9):.1f} times "
                 f"its time.")
    zs_gain = cot["accuracy"] - rows["direct"]["accuracy"]
    few, zero = rows["few_shot_cot"]["answered"], cot["answered"]
    lines.append(f"Zero-shot CoT is {'above' if zs_gain > 0 else 'not above'} the direct answer overall "
                 f"({zs_gain:+.2f}). {few:.2f} of the few-shot answers contain a readable number against "
                 f"{zero:.2f} for zero-shot CoT: "
                 + ("the worked examples also fixed the answer format." if few > zero else
                    "the worked examples did not make answers easier to read in this run."))
    return " ".join(lines)


def render_report(results: dict) -> str:
    """The whole ``report.md``."""
    check = is_pipeline_check(results)
    out = ["# hw5.P4 — Persian LLM: soft prompt and reasoning methods", ""]
    if check:
        out += ["> **Pipeline check**: random-weight twins of the real architectures; no number below is a "
                "result.", ""]
    if "sentiment" in results:
        s = results["sentiment"]
        out += [f"## Soft prompt on {model_label(s, SENTIMENT_MODEL)}", "",
                "Class balance (shuffled, class-balanced subset):", "",
                balance_table(s), "", sentiment_table(s), "", history_table(s), "", nearest_table(s), "",
                sentiment_analysis(s), ""]
    if "reasoning" in results:
        r = results["reasoning"]
        out += [f"## Reasoning methods on {model_label(r, REASONING_MODEL)}", "", levels_table(r), "",
                reasoning_table(r), "",
                "Self-consistency accuracy vs k: " + ", ".join(f"k={k + 1}: {a:.2f}" for k, a in
                                                              enumerate(r["methods"][-1]["accuracy_vs_k"])),
                "", reasoning_analysis(r), "", "### Sample chains (shortened)", "", samples_markdown(r), ""]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ plots
def plot_soft_prompt(sentiment: dict):
    """Loss per epoch (train, validation) and accuracy of both methods; returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    hist = sentiment["history"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.5))
    epochs = [h["epoch"] for h in hist]
    ax.plot(epochs, [h["train_loss"] for h in hist], marker="o", label="train")
    ax.plot(epochs, [h["val_loss"] for h in hist], marker="o", label="validation")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="label-word cross-entropy", title="soft prompt training loss")
    ax.legend()
    ax.grid(alpha=.3)
    bx.bar(["zero-shot instruction", "soft prompt"], [sentiment["zero_shot"]["accuracy"],
                                                      sentiment["soft_prompt"]["accuracy"]])
    bx.axhline(0.5, color="gray", ls="--", lw=1, label="chance (balanced)")
    bx.set(ylim=(0, 1), ylabel="validation accuracy", title="sentiment accuracy")
    bx.legend()
    if sentiment["twin"]:
        fig.suptitle("pipeline check: random-weight gpt2-fa twin")
    fig.tight_layout()
    return fig


def plot_reasoning(reasoning: dict):
    """Accuracy per level and method (grouped bars), tokens per problem, self-consistency accuracy vs k."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = reasoning["methods"]
    levels = list(reasoning["levels"])
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        axes[0].bar([j + i * width for j in range(len(levels))], [r["by_level"][lv] for lv in levels], width,
                    label=METHOD_NAMES[r["method"]])
    axes[0].set_xticks([j + width * (len(rows) - 1) / 2 for j in range(len(levels))],
                       [f"level {lv}" for lv in levels])
    axes[0].set(ylim=(0, 1), ylabel="accuracy", title="accuracy per level and method")
    axes[0].legend(fontsize=8)
    axes[1].bar([METHOD_NAMES[r["method"]] for r in rows], [r["tokens_per_problem"] for r in rows])
    axes[1].set(title="generated tokens per problem")
    axes[1].tick_params(axis="x", rotation=20)
    curve = rows[-1]["accuracy_vs_k"]
    axes[2].plot(range(1, len(curve) + 1), curve, marker="o")
    axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[2].set(xlabel="k sampled chains", ylabel="majority-vote accuracy", ylim=(0, 1),
                title="self-consistency: accuracy vs k")
    if reasoning["twin"]:
        fig.suptitle("pipeline check: random-weight Qwen2.5 twin")
    fig.tight_layout()
    return fig
