"""hw5.P5: ViT + LoRA with PEFT and the Trainer, offline on tiny models.

Images: a synthetic ``<class>/<image>.png`` folder written per session (class = mean colour, so it is
learnable), named after Food-101 classes, with a ``classes.txt`` listing more classes than folders; the real
Food-101 sample is used by the tests at the end when ``$DLHW_DATA`` holds it.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common import CorruptDataError, DataNotFoundError, ModelNotFoundError, torch_threads
from hw5_clip_peft.vit_lora.food_data import (FOOD101_HUB_ID, collate, image_transforms, load_food, preprocess,
                                              read_class_names, resolve_food_source)
from hw5_clip_peft.vit_lora.lora import (LoraSettings, TinyViT, add_lora, build_vit,
                                         lora_trainable_formula, predict_image, resolve_target_modules)
from hw5_clip_peft.vit_lora.lora_compare import (FULL, HEAD_ONLY, CompareConfig, compare_methods,
                                                 peak_training_memory)
from hw5_clip_peft.vit_lora.lora_merge import latency_table, max_logit_gap, merge_check, merged_copy
from hw5_clip_peft.vit_lora.training import TrainConfig, epoch_records, train_classifier

CLASS_LIST = ("apple_pie", "baklava", "bibimbap", "churros", "waffles")  # 5-way head, 3 classes with images
COLOURS = {"apple_pie": (200, 60, 40), "baklava": (40, 200, 60), "bibimbap": (40, 60, 200)}
FAST = TrainConfig(num_epochs=1, batch_size=4, eval_batch_size=8, lr=5e-3)


@pytest.fixture(scope="session")
def food_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("food")
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        (root / name).mkdir()
        for i in range(4):
            pixels = np.clip(rng.normal(colour, 30, size=(40, 48, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    (root / "classes.txt").write_text("\n".join(CLASS_LIST) + "\n")
    return root


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models: ops too small to split across threads; on shared cores extra threads only spin."""
    with torch_threads(1):
        yield


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DLHW_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("DLHW_DOWNLOAD", raising=False)


@pytest.fixture(scope="session")
def food(food_folder):
    return load_food(food_folder, val_fraction=1 / 3, seed=0)


def tiny(labels, seed=0):
    return build_vit(TinyViT(), labels, seed=seed)


# ------------------------------------------------------------------------------------------ data
def test_folder_labels_follow_the_class_list(food):
    assert food.labels == CLASS_LIST and food.num_classes == 5
    assert (len(food.train), len(food.val)) == (8, 4)
    assert set(food.val["label"]) <= {0, 1, 2}
    train_counts = np.bincount(food.train["label"], minlength=5)
    assert train_counts[3:].sum() == 0 and (train_counts[:3] >= 2).all()  # stratified: every class in train


def test_preprocess_and_collate_shapes(food):
    _, processor = tiny(food.labels)
    train_ds, val_ds = preprocess(food, processor)
    batch = collate([train_ds[i] for i in range(3)])
    assert batch["pixel_values"].shape == (3, 3, 32, 32) and batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].dtype == torch.long
    x = val_ds[0]["pixel_values"]
    assert -1 - 1e-6 <= float(x.min()) and float(x.max()) <= 1 + 1e-6  # mean = std = 0.5: [0, 1] -> [-1, 1]


def test_bad_sources_give_clear_errors(tmp_path, food_folder):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_food(tmp_path / "nowhere")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "pizza_pie").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "odd" / "pizza_pie" / "a.png")
    (tmp_path / "odd" / "classes.txt").write_text("apple_pie\n")
    with pytest.raises(CorruptDataError, match="pizza_pie"):
        load_food(tmp_path / "odd")
    assert read_class_names(food_folder / "classes.txt") == CLASS_LIST
    (tmp_path / "twice.txt").write_text("apple_pie\napple_pie\n")
    with pytest.raises(CorruptDataError, match="twice"):
        read_class_names(tmp_path / "twice.txt")


def test_extracted_archive_layout_uses_the_official_split(tmp_path, food_folder):
    import shutil

    images = tmp_path / "food-101" / "images"
    shutil.copytree(food_folder, images, ignore=shutil.ignore_patterns("classes.txt"))
    (tmp_path / "food-101" / "meta").mkdir()
    (tmp_path / "food-101" / "meta" / "classes.txt").write_text("\n".join(CLASS_LIST))
    held_out = ["apple_pie/0", "baklava/3", "bibimbap/1"]
    (tmp_path / "food-101" / "meta" / "test.txt").write_text("\n".join(held_out) + "\n")
    data = load_food(images)
    assert data.labels == CLASS_LIST and (len(data.train), len(data.val)) == (9, 3)
    assert sorted(data.val["label"]) == [0, 1, 2]


def test_sources_resolve_from_the_data_root_passed_in(tmp_path, food_folder, monkeypatch):
    monkeypatch.setenv("DLHW_DATA", str(food_folder))  # must be ignored: the root is a parameter
    with pytest.raises(DataNotFoundError, match="no data root"):
        resolve_food_source("sample", None)
    with pytest.raises(DataNotFoundError, match="food101_sample"):
        resolve_food_source("sample", tmp_path)
    (tmp_path / "food101_sample").symlink_to(food_folder)
    assert resolve_food_source("sample", tmp_path) == str(tmp_path / "food101_sample")
    assert resolve_food_source(str(food_folder), None) == str(food_folder.resolve())
    with pytest.raises(DataNotFoundError, match="neither"):
        resolve_food_source(str(tmp_path / "nowhere"), tmp_path)


def test_hub_dataset_without_downloads_fails_fast_without_network(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the hub was contacted")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    tic = time.perf_counter()
    with pytest.raises(DataNotFoundError, match="DLHW_DOWNLOAD=1"):
        resolve_food_source("hub", None)
    with pytest.raises(DataNotFoundError, match="DLHW_DOWNLOAD=1"):
        load_food(FOOD101_HUB_ID)
    assert time.perf_counter() - tic < 5


def test_held_out_photos_leave_the_training_split(food_folder):
    data = load_food(food_folder, val_fraction=1 / 3, hold_out=2, seed=0)
    assert (len(data.train), len(data.val), len(data.held_out)) == (6, 4, 2)
    used = {f"{p.parent.name}/{p.name}" for split in (data.train, data.val) for p in _paths(split)}
    for held in data.held_out:
        assert isinstance(held.image, Path) and held.name == f"{held.image.parent.name}/{held.image.name}"
        assert held.name not in used and CLASS_LIST[held.label] == held.image.parent.name
    again = load_food(food_folder, val_fraction=1 / 3, hold_out=2, seed=0)
    assert [h.name for h in again.held_out] == [h.name for h in data.held_out]  # seeded


def _paths(split) -> list[Path]:
    from hw5_clip_peft.vit_lora.food_data import _file_paths

    return _file_paths(split)


# ------------------------------------------------------------------------------------------ PEFT
@pytest.mark.parametrize("r", [4, 16])
def test_trainable_parameters_equal_the_formula(food, r):
    model, _ = tiny(food.labels)
    base = sum(p.numel() for p in model.parameters())
    lora_model, counts = add_lora(model, LoraSettings(r=r))
    assert counts.trainable == lora_trainable_formula(model.config, r)
    assert counts.trainable == sum(p.numel() for p in lora_model.parameters() if p.requires_grad)
    # PEFT's total: the frozen base (with its original head) + LoRA + the trained copy of the head
    assert counts.base == base and counts.peft_total == base + counts.trainable
    assert counts.fraction == counts.trainable / base and f"{100 * counts.fraction:.2f} %" in str(counts)
    names = {n for n, p in lora_model.named_parameters() if p.requires_grad}
    assert all("lora_" in n or "classifier" in n for n in names)


def test_vit_base_r16_trains_under_one_percent():
    from transformers import ViTConfig, ViTForImageClassification

    with torch.device("meta"):  # exact shapes of ViT-Base/16 without allocating its 86 M weights
        model = ViTForImageClassification(ViTConfig(num_labels=101))
        _, counts = add_lora(model, LoraSettings(r=16))
    assert counts.trainable == 12 * 2 * 16 * (768 + 768) + 768 * 101 + 101 == 667_493
    assert counts.base == 85_876_325
    assert counts.fraction < 0.01


def test_query_value_names_resolve_across_transformers_versions(food):
    model, _ = tiny(food.labels)
    names = resolve_target_modules(model, ["query", "value"])
    assert all(any(n.endswith(t) for n, _ in model.named_modules()) for t in names)
    with pytest.raises(ValueError, match="no module called 'attn_qkv'"):
        resolve_target_modules(model, ["attn_qkv"])


# ------------------------------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def trained(food, tmp_path_factory):
    model, processor = tiny(food.labels)
    lora_model, _ = add_lora(model, LoraSettings(r=4))
    before = {n: p.detach().clone() for n, p in lora_model.named_parameters() if p.requires_grad}
    train_ds, val_ds = preprocess(food, processor)
    result = train_classifier(lora_model, train_ds, val_ds, tmp_path_factory.mktemp("lora"), FAST)
    return lora_model, processor, result, before, val_ds


def test_trainer_runs_two_steps_and_updates_only_adapters(trained):
    lora_model, _, result, before, _ = trained
    trainer = result.trainer
    assert trainer.state.global_step == 2  # 8 images, batch 4, 1 epoch
    assert len(result.epochs) == 1 and 0.0 <= result.best_accuracy <= 1.0
    assert np.isfinite(result.epochs[0]["train_loss"]) and result.epochs[0]["seconds"] > 0
    assert Path(trainer.state.best_model_checkpoint).is_dir()
    changed = [n for n, p in lora_model.named_parameters()
               if p.requires_grad and not torch.equal(p, before[n])]
    assert any("lora_B" in n for n in changed) and any("classifier" in n for n in changed)


def test_merged_model_gives_the_same_logits(trained, food):
    lora_model, processor, _, _, val_ds = trained
    x = collate([val_ds[i] for i in range(4)])["pixel_values"]
    merged = merged_copy(lora_model)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert any("lora_" in n for n, _ in lora_model.named_parameters())  # the original stays unmerged
    assert merge_check(lora_model, merged, x)["passed"]
    base, _ = tiny(food.labels)  # same seed: the weights LoRA started from, with the untrained head
    assert max_logit_gap(lora_model, base, x) > 1e-3  # the check compares models that really differ
    rows = latency_table({"base": base, "unmerged": lora_model, "merged": merged}, x[:1], repeats=2, rounds=1)
    assert [r["model"] for r in rows] == ["base", "unmerged", "merged"] and rows[0]["vs_base"] == 1.0
    assert all(r["wall_ms"] > 0 for r in rows)
    cpu_rows = latency_table({"merged": merged}, x[:1], repeats=2, rounds=1, clock="cpu")
    assert cpu_rows[0]["cpu_ms"] >= 0


def test_merge_of_random_adapters_matches_within_tolerance(food):
    model, _ = tiny(food.labels, seed=1)
    lora_model, _ = add_lora(model, LoraSettings(r=8, alpha=32), init_lora_weights=False)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    merged = merged_copy(lora_model)
    check = merge_check(lora_model, merged, x)
    assert check["passed"] and check["tolerance"] == 1e-5 * max(1, check["max_abs_logit"])
    merged.classifier.weight.data[0, 0] += 1e-2  # a slightly wrong merge shows: the check can fail
    assert not merge_check(lora_model, merged, x)["passed"]


def test_predict_top5_on_an_image_file(trained, food_folder):
    lora_model, processor, _, _, _ = trained
    top = predict_image(lora_model, processor, food_folder / "baklava" / "0.png")
    assert len(top) == 5 and {label for label, _ in top} <= set(CLASS_LIST)
    probs = [p for _, p in top]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    pil_top = predict_image(lora_model, processor, Image.open(food_folder / "baklava" / "0.png"))
    assert [label for label, _ in pil_top] == [label for label, _ in top]
    with pytest.raises(FileNotFoundError):
        predict_image(lora_model, processor, food_folder / "missing.jpg")


def test_an_interrupted_run_resumes_from_its_last_saved_epoch(food, tmp_path):
    import json
    from dataclasses import replace

    cfg = replace(FAST, num_epochs=2, resume=True)

    def fresh():
        model, processor = tiny(food.labels)
        return add_lora(model, LoraSettings(r=4))[0], preprocess(food, processor)

    def interrupt_at_epoch_2(line):
        if line.startswith("epoch 2/"):  # epoch 2 evaluated, not yet saved
            raise KeyboardInterrupt

    model, (train_ds, val_ds) = fresh()
    with pytest.raises(KeyboardInterrupt):
        train_classifier(model, train_ds, val_ds, tmp_path, cfg, log=interrupt_at_epoch_2)
    saved = sorted(p.name for p in tmp_path.glob("checkpoint-*"))
    assert saved == ["checkpoint-2"]  # 8 photos, batch 4: epoch 1 ends at step 2
    state = json.loads((tmp_path / "checkpoint-2" / "trainer_state.json").read_text())
    model, (train_ds, val_ds) = fresh()
    result = train_classifier(model, train_ds, val_ds, tmp_path, cfg)
    assert result.trainer.state.global_step == 4 and [e["epoch"] for e in result.epochs] == [1, 2]
    assert result.epochs[0] == epoch_records(state["log_history"])[0]  # epoch 1 restored, not trained again


def test_epoch_records_from_a_resumed_log_history():
    """A run resumed after its last epoch passes through the epoch loop once more: the first timing stays."""
    history = [{"epoch": 1.0, "epoch_seconds": 2.0}, {"epoch": 1.0, "loss": 3.0, "step": 2},
               {"epoch": 1.0, "eval_loss": 2.5, "eval_accuracy": 0.25, "step": 2},
               {"epoch": 2.0, "epoch_seconds": 4.0}, {"epoch": 2.0, "loss": 2.0, "step": 4},
               {"epoch": 2.0, "eval_loss": 2.0, "eval_accuracy": 0.5, "step": 4},
               {"epoch": 2.0, "epoch_seconds": 0.1},  # the pass-through after resuming
               {"epoch": 3.0, "epoch_seconds": 1.0}]  # killed before its evaluation: not an epoch record
    assert epoch_records(history) == [
        {"epoch": 1, "train_loss": 3.0, "val_loss": 2.5, "val_accuracy": 0.25, "seconds": 2.0},
        {"epoch": 2, "train_loss": 2.0, "val_loss": 2.0, "val_accuracy": 0.5, "seconds": 4.0}]


def test_best_checkpoint_reload_restores_a_plain_vit(food, tmp_path):
    model, processor = tiny(food.labels)
    train_ds, val_ds = preprocess(food, processor)
    result = train_classifier(model, train_ds, val_ds, tmp_path, FAST)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    result.trainer._load_best_model()  # transformers 5 alone would leave the +1 weights (renamed keys)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())


# ------------------------------------------------------------------------------------------ comparison
def test_peak_memory_covers_gradients_and_adam_states(food, capfd):
    model, processor = tiny(food.labels)
    train_ds, _ = preprocess(food, processor)
    batch = collate([train_ds[i] for i in range(4)])
    n = sum(p.numel() for p in model.parameters())
    full = peak_training_memory(model, batch, lr=1e-3)
    head_model, _ = tiny(food.labels)
    head_model.requires_grad_(False)
    head_model.classifier.requires_grad_(True)
    head = peak_training_memory(head_model, batch, lr=1e-3)
    assert full >= 3 * 4 * n  # float32 gradients + AdamW's two moments of every parameter, alive together
    assert 0 < head < full / 2
    assert "profiler_start" not in capfd.readouterr().err  # the profiler's fd-level chatter is filtered


def test_comparison_rows_at_equal_epochs(food, tmp_path):
    model, processor = tiny(food.labels)
    train_ds, val_ds = preprocess(food, processor)
    cfg = CompareConfig(ranks=(4,), train=FAST, full_lr=1e-3)
    rows, results = compare_methods(lambda: tiny(food.labels)[0], train_ds, val_ds, tmp_path, cfg)
    by = {r["method"]: r for r in rows}
    assert list(by) == ["LoRA r=4", HEAD_ONLY, FULL]
    d, k = model.config.hidden_size, 5
    assert by[HEAD_ONLY]["trainable"] == d * k + k
    assert by["LoRA r=4"]["trainable"] == lora_trainable_formula(model.config, 4)
    assert by[FULL]["trainable"] == sum(p.numel() for p in model.parameters())
    assert by[HEAD_ONLY]["checkpoint_MB"] < by["LoRA r=4"]["checkpoint_MB"] < by[FULL]["checkpoint_MB"]
    assert by[HEAD_ONLY]["peak_train_MB"] < by[FULL]["peak_train_MB"]
    assert all(len(results[m].epochs) == 1 and r["s_per_epoch"] > 0 for m, r in by.items())


# ------------------------------------------------------------------------------------------ offline errors
def test_missing_model_without_downloads_is_a_clear_error_without_network(monkeypatch, tmp_path):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the hub was contacted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    tic = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as err:
        build_vit("someone/no-such-vit", CLASS_LIST)
    message = str(err.value)
    assert "someone/no-such-vit" in message and "DLHW_DOWNLOAD=1" in message and "--model" in message
    assert time.perf_counter() - tic < 5  # no download retries
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        build_vit("./no/such/vit-folder", CLASS_LIST)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="preprocessor_config.json"):
        build_vit(tmp_path / "half", CLASS_LIST)


def test_a_saved_folder_loads_with_a_fresh_head(tmp_path):
    """A folder written by save_pretrained (model + processor), like a downloaded checkpoint, gets a new
    len(labels)-way head; the backbone weights are the folder's."""
    from transformers import ViTConfig, ViTForImageClassification

    config = TinyViT().config(["a", "b"])
    saved = ViTForImageClassification(ViTConfig(**{**config.to_dict(), "num_labels": 2}))
    saved.save_pretrained(tmp_path / "vit")
    from hw5_clip_peft.vit_lora.lora import tiny_processor

    tiny_processor(32).save_pretrained(tmp_path / "vit")
    model, processor = build_vit(tmp_path / "vit", CLASS_LIST)
    assert model.config.num_labels == 5 and model.classifier.out_features == 5
    assert model.config.id2label[3] == "churros" and processor.size["height"] == 32
    assert torch.equal(model.vit.embeddings.patch_embeddings.projection.weight,
                       saved.vit.embeddings.patch_embeddings.projection.weight)


# ------------------------------------------------------------------------------------------ real photos
def test_real_sample_maps_onto_101_classes_and_predicts(data_root):
    folder = data_root / "food101_sample"
    if not (folder / "classes.txt").is_file():
        pytest.skip(f"needs the Food-101 sample under {folder}")
    data = load_food(folder, val_fraction=0.2)
    assert data.num_classes == 101 and (len(data.train), len(data.val)) == (80, 20)
    assert set(data.val["label"]) == set(range(10))  # stratified: two photos of each of the 10 classes
    model, processor = tiny(data.labels)
    photo = sorted((folder / "bibimbap").glob("*.jpg"))[0]
    top = predict_image(model, processor, photo)
    assert len(top) == 5 and all(label in data.labels for label, _ in top)
    assert image_transforms(processor, train=True)(Image.open(photo).convert("RGB")).shape == (3, 32, 32)
