"""The experiment configuration per profile and the worst-class confusion helper."""
import numpy as np

from hw5_clip_peft.clip.clip_experiments import ClipExperimentConfig, worst_confusion
from hw5_clip_peft.clip.clip_models import CONVNEXT_BASE, CONVNEXT_XXLARGE, TINY, TINY_WIDE


def test_profiles_pick_models_and_budgets(monkeypatch):
    monkeypatch.delenv("DLHW_PROFILE", raising=False)
    quick = ClipExperimentConfig.for_profile()
    assert (quick.base, quick.large) == (TINY, TINY_WIDE) and max(quick.shots) <= 6
    full = ClipExperimentConfig.for_profile("full", base_checkpoint="b.bin")
    assert (full.base, full.large) == (CONVNEXT_BASE, CONVNEXT_XXLARGE)
    assert full.shots == (1, 2, 4, 8, 16) and full.base_checkpoint == "b.bin"
    assert quick.class_embedding.num_epochs < full.class_embedding.num_epochs


def test_worst_confusion_keeps_worst_classes_and_where_their_images_go():
    classes = ("a", "b", "c", "d")
    cm = np.array([[0, 4, 0, 0],   # a: always predicted as b (F1 0)
                   [0, 5, 0, 0],
                   [0, 0, 3, 2],
                   [0, 0, 0, 5]])
    report = [{"class": c, "f1": f, "support": int(cm[i].sum())}
              for i, (c, f) in enumerate(zip(classes, [0.0, 0.7, 0.75, 0.8]))]
    rates, names = worst_confusion({"confusion": cm, "report": report}, classes, n=1)
    assert names == ["a", "b"]
    assert rates.tolist() == [[0.0, 1.0], [0.0, 1.0]]
