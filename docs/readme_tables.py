"""The README's "Measured" tables, rendered from the committed run records (never typed by hand).

    python docs/readme_tables.py            # print every table
    python docs/readme_tables.py --write    # put them into README.md between <!-- table:NAME --> markers

``tests/test_readme_tables.py`` fails when README.md holds anything else between the markers, so a table
can only change by regenerating it from the records (each record names the command that produced it).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MARKER = re.compile(r"(<!-- table:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def _load(rel: str) -> dict:
    return json.loads((REPO / rel).read_text(encoding="utf-8"))


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f} %"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fc_cifar10() -> str:
    """hw2mlp.P1 on CIFAR-10 (hw2_mlp/results/fc_cifar10_full.json)."""
    d = _load("hw2_mlp/results/fc_cifar10_full.json")
    r = d["results"]
    two, best, over = r["two_layer"], r["search"]["best"], r["overfit"]["summary"]
    rows = [
        ["TwoLayerNet", f"hidden {two['hidden']}, SGD lr {two['learning_rate']}, {len(two['val_acc'])} epochs",
         _pct(two["best_val_acc"]), "–"],
        ["best FullyConnectedNet (search on validation)",
         f"{best['id']}: {best['update_rule']} lr {best['learning_rate']:.3g}, reg {best['reg']:.3g}, "
         f"dropout {best['dropout']}, {best['epochs']} epochs", _pct(best["val_acc"]), _pct(best["test_acc"])],
    ]
    for name, s in over.items():
        rows.append([f"overfit {d['plan']['overfit_n']} images, {name}",
                     f"{s['reached_100']}/{s['settings']} settings reach 100 % train, {s['diverged']} diverged",
                     "–", "–"])
    hours = d["compute_seconds"] / 3600
    return (_table(["model", "setting", "val acc", "test acc"], rows)
            + f"\n\n{d['data']}; {hours:.1f} CPU-hours over all runs, {d['threads']} thread per run, "
              f"{d['cpu']}. Command: `{d['command']}`")


def hpo_cifar10() -> str:
    """hw7.P5 on CIFAR-10 (hw7_hpo/results/cifar10/results.json)."""
    d = _load("hw7_hpo/results/cifar10/results.json")
    rows = [[m, f"{r['best_val_acc']:.4f}", f"{r['test_acc']:.4f}", f"{r['epochs']} / {r['budget_epochs']}",
             f"{len(r['trials'])} ({r['complete']}/{r['pruned']}/{r['diverged']})"]
            for m, r in d["methods"].items()]
    b = d["baseline"]
    return (_table(["method", "best val acc", "test acc (best config)", "epochs used / budget",
                    "trials (complete/pruned/diverged)"], rows)
            + f"\n\nBaseline (default config): val {b['val_acc']:.4f}, test {b['test_acc']:.4f}. "
              f"{d['facts'][0]}")


def _ff_row(label: str, arch: str, run: dict, epochs: str, error: float | None, rule: str) -> list[str]:
    return [label, arch, epochs, _pct(error, 2), rule]


def forward_forward() -> str:
    """hw2mlp.P2 (hw2_mlp/results/ff_*.json): the finished 2x500 run and the long 3x1000 runs as they stand."""
    rows = []
    small = _load("hw2_mlp/results/ff_full_cpu.json")
    arch = "784-" + "-".join(str(h) for h in small["config"]["hidden"])
    s, u, b = small["supervised"], small["unsupervised"], small["backprop"]
    rows.append(_ff_row("supervised FF", arch, s, f"{s['epochs']} (done)", s["test_error"], "accumulated goodness"))
    rows.append(_ff_row("supervised FF", arch, s, f"{s['epochs']} (done)", s["test_error_one_pass"],
                        "one pass + softmax"))
    rows.append(_ff_row("unsupervised FF", arch, u, f"{u['epochs']} (done)", u["test_error"], "linear classifier"))
    rows.append(_ff_row("backprop", arch, b, f"{b['epochs']} (done)", b["test_error"], "same architecture"))
    runs = (("sup_3x1000", "Adam"), ("sup_loewex", "loeweX recipe"), ("sup_loewex_seed1", "loeweX recipe, seed 1"),
            ("sup_loewex_hard", "loeweX recipe, hard negatives"),
            ("sup_loewex_hard_seed1", "loeweX recipe, hard negatives, seed 1"), ("unsup_3x1000", "Adam"),
            ("unsup_loewex", "loeweX recipe"), ("unsup_4x2000_loewex", "loeweX recipe"), ("backprop_3x1000", "Adam"),
            ("backprop_3x1000_wd", "Adam + weight decay"),
            ("backprop_3x1000_tuned", "Adam, cosine lr, weight decay chosen on validation"))
    for name, recipe in runs:
        if not (REPO / f"hw2_mlp/results/ff_{name}.json").exists():
            continue
        d = _load(f"hw2_mlp/results/ff_{name}.json")
        key = d["experiments"][0]
        if key not in d:  # a baseline sweep still scoring its candidates: no final run yet
            continue
        run = d[key]
        arch = "784-" + "-".join(str(h) for h in d["config"]["hidden"])
        label = f"{key}, {recipe}" if key == "backprop" else f"{key} FF, {recipe}"
        if not run.get("partial"):  # a finished run: its final test error
            if key == "backprop":
                rows.append(_ff_row(label, arch, run, f"{run['epochs']} (done)", run["test_error"], "same architecture"))
                continue
            rule = "accumulated goodness" if key == "supervised" else "linear classifier"
            rows.append(_ff_row(label, arch, run, f"{run['epochs']} (done)", run["test_error"], rule))
            if "test_error_one_pass" in run:
                rows.append(_ff_row(label, arch, run, f"{run['epochs']} (done)", run["test_error_one_pass"],
                                    "one pass + softmax"))
            continue
        epochs = f"{run['epochs_done']} of {run['epochs_planned']} (partial)"
        if key == "backprop":
            last = run["history"][-1]
            rows.append([label, arch, epochs, "–", f"validation error {_pct(1 - last['val_acc'], 2)}"])
            continue
        latest = run.get("latest_test_error")
        rows.append(_ff_row(label, arch, run, epochs, latest and latest["error"],
                            f"{latest['rule']}, after epoch {latest['epoch']}" if latest else "no test score yet"))
    paper = _load("hw2_mlp/results/ff_sup_3x1000.json")["paper"]
    rows.append(["paper (Hinton 2022), supervised", paper["architecture"], str(paper["supervised_epochs"]),
                 _pct(paper["supervised_test_error"], 2), "cited"])
    rows.append(["paper (Hinton 2022), unsupervised", paper["architecture"], str(paper["unsupervised_epochs"]),
                 _pct(paper["unsupervised_test_error"], 2), "cited"])
    return _table(["variant", "architecture", "epochs", "MNIST test error", "read-out / note"], rows)


def mobilenet_cifar10() -> str:
    """hw2cnn.P2 on CIFAR-10 (hw2_cnn/results/cifar10_*.json)."""
    rows = []
    for model in ("mobilenet", "plain"):
        d = _load(f"hw2_cnn/results/cifar10_{model}.json")
        best_val = max((c.get("val_acc", 0) for c in d["curves"]), default=None)
        rows.append([model, f"{d['params']:,}", f"{d['flops_per_image'] / 1e6:.1f}",
                     f"{d['epochs_done']} of {d['epochs_planned']} ({d['status']})",
                     _pct(best_val), _pct(d.get("test_acc")), f"{d['train_images_per_s']:.0f}",
                     f"{d['train_seconds'] / 3600:.2f}"])
    return (_table(["model", "parameters", "MFLOPs / image", "epochs", "best val acc", "test acc",
                    "train images/s", "train hours"], rows)
            + f"\n\n{d['data']}; {d['threads']} thread, CPU, shared and heavily loaded while these ran. "
              f"Command: `{d['command'].replace('--model plain', '--model <model>')}`")


TABLES: dict[str, Callable[[], str]] = {"fc-cifar10": fc_cifar10, "hpo-cifar10": hpo_cifar10,
                                         "forward-forward": forward_forward, "mobilenet-cifar10": mobilenet_cifar10}


def render(name: str) -> str:
    return TABLES[name]().rstrip() + "\n"


def fill(text: str) -> str:
    """``text`` with every marked table replaced by its rendering."""
    return MARKER.sub(lambda m: m.group(1) + render(m.group("name")) + m.group(4), text)


def main(argv: list[str]) -> int:
    if argv == ["--write"]:
        README.write_text(fill(README.read_text(encoding="utf-8")), encoding="utf-8")
        return 0
    if argv:
        print("usage: python docs/readme_tables.py [--write]", file=sys.stderr)
        return 2
    for name in TABLES:
        print(f"<!-- table:{name} -->\n{render(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
