"""LoRA (several ranks) vs head-only vs full fine-tuning of one ViT, at equal epochs (hw5.P5, part 3).

For each method, on a fresh copy of the same base model, :func:`compare_methods` records:

- ``trainable``: parameters that receive gradients, and their share of the base model;
- ``checkpoint_MB``: what must be stored per task on top of the shared base: the LoRA adapter folder
  (``save_pretrained``: adapter + trained head), the head's tensors alone (head-only), the whole model (full);
- ``peak_train_MB``: peak tensor memory of a training step *above the loaded model* (activations, gradients,
  AdamW states, temporaries), from a separate probe of :data:`MEMORY_PROBE_STEPS` steps at the training batch
  size. CUDA: ``torch.cuda.max_memory_allocated``. CPU: the PyTorch profiler's allocation events
  (``profile_memory=True``), summed in time order; it sees tensors only (not Python objects or the
  allocator's cache), which is the same quantity the CUDA figure measures;
- ``s_per_epoch``: mean wall time of a training epoch (data loading included, evaluation excluded);
- ``val_accuracy``: best validation accuracy over the epochs (the checkpoint the Trainer keeps).
"""
from __future__ import annotations

import contextlib
import gc
import os
import re
import statistics
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from common import count_parameters

from .food_data import collate
from .lora import LoraSettings, add_lora, quiet_transformers
from .training import TrainConfig, TrainResult, train_classifier

HEAD_ONLY, FULL = "head-only", "full"
MEMORY_PROBE_STEPS = 2  # AdamW states appear at step 1; step 2 shows the steady state


@dataclass(frozen=True)
class CompareConfig:
    """Methods and their learning rates; every method trains for ``train.num_epochs`` epochs."""

    ranks: tuple[int, ...] = (4, 8, 16)
    lora: LoraSettings = LoraSettings()  # r is replaced by each rank; alpha stays (scale alpha / r)
    lora_lr: float = 5e-3
    head_lr: float = 5e-3
    full_lr: float = 5e-5
    train: TrainConfig = field(default_factory=TrainConfig)

    def methods(self) -> list[str]:
        return [f"LoRA r={r}" for r in self.ranks] + [HEAD_ONLY, FULL]

    def lr(self, method: str) -> float:
        return {HEAD_ONLY: self.head_lr, FULL: self.full_lr}.get(method, self.lora_lr)


def prepare(method: str, model: torch.nn.Module, cfg: CompareConfig) -> torch.nn.Module:
    """Set which parameters of ``model`` train: LoRA adapters + head, the head alone, or everything."""
    if method == FULL:
        model.requires_grad_(True)
        return model
    if method == HEAD_ONLY:
        model.requires_grad_(False)
        model.classifier.requires_grad_(True)
        return model
    rank = int(method.split("=")[1])
    return add_lora(model, replace(cfg.lora, r=rank))[0]


def checkpoint_bytes(method: str, model: torch.nn.Module, folder: str | Path) -> int:
    """Bytes on disk of what this method must store per task (see the module docstring)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if method == HEAD_ONLY:
        save_file({k: v.detach().contiguous().cpu() for k, v in model.classifier.state_dict().items()},
                  str(folder / "head.safetensors"))
    else:  # PEFT: adapter_config.json + adapter_model.safetensors; full: config.json + model.safetensors
        with quiet_transformers():
            model.save_pretrained(folder)
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in {".safetensors", ".json"})


def _cpu_peak_bytes(prof) -> int:
    """Peak of the running sum of CPU allocation events (+ alloc, - free) of a finished profiler run."""
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    level = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        level += event.nbytes()
        peak = max(peak, level)
    return peak


def peak_training_memory(model: torch.nn.Module, batch: dict, lr: float,
                         steps: int = MEMORY_PROBE_STEPS) -> int:
    """Peak bytes of tensors allocated by ``steps`` AdamW training steps on ``batch``, above what the model
    already holds. The model's trainable parameters change; pass a throw-away copy."""
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    model.train()
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()

    def run():
        for _ in range(steps):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile

    with _profiler_chatter_filtered():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            run()
    return _cpu_peak_bytes(prof)


# what the profiler's C++ side (kineto) writes straight to file descriptor 2 on every start and stop, and on a
# machine without a GPU: status lines, not problems of this program
_KINETO_CHATTER = re.compile(r"^(USDT|ERROR|WARNING|INFO):\S* .*(SyncActivityProfilerHandler|DeviceProperties"
                             r"|gpuGetDeviceCount|CuptiActivityProfiler)")


@contextlib.contextmanager
def _profiler_chatter_filtered():
    """Send fd 2 to a temporary file for the block, then pass on every line that is not kineto chatter
    (``sys.stderr`` alone cannot catch it: it is written below Python)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [line for line in sink.read().decode("utf-8", "replace").splitlines()
                    if not _KINETO_CHATTER.search(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def compare_methods(make_model: Callable[[], torch.nn.Module], train_ds, val_ds, workdir: str | Path,
                    cfg: CompareConfig = CompareConfig(), device: torch.device | None = None,
                    log: Callable[[str], None] | None = None) -> tuple[list[dict], dict[str, TrainResult]]:
    """Train every method of ``cfg`` on a fresh ``make_model()`` and return ``(rows, results)``.

    ``make_model`` must return the same base model each call (same pretrained weights or the same seed).
    ``trainable_%`` is relative to the base model's parameters (backbone + new head), as everywhere here.
    The Trainer picks the device itself (CUDA when present); ``device`` is where the memory probe runs.
    """
    workdir = Path(workdir)
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    probe_batch = collate([train_ds[i] for i in range(min(cfg.train.batch_size, len(train_ds)))])
    base_params = count_parameters(make_model())
    rows, results = [], {}
    for method in cfg.methods():
        slug = method.replace(" ", "").replace("=", "")
        memory = peak_training_memory(prepare(method, make_model(), cfg).to(device), probe_batch,
                                      cfg.lr(method))
        _free(device)
        model = prepare(method, make_model(), cfg)
        trainable = count_parameters(model, trainable_only=True)
        if log is not None:
            log(f"comparison: {method}")
        result = train_classifier(model, train_ds, val_ds, workdir / slug / "trainer",
                                  replace(cfg.train, lr=cfg.lr(method), resume=False))
        results[method] = result
        rows.append({"method": method, "trainable": trainable, "trainable_%": 100 * trainable / base_params,
                     "checkpoint_MB": checkpoint_bytes(method, result.trainer.model, workdir / slug / "saved")
                     / 1e6,
                     "peak_train_MB": memory / 1e6, "s_per_epoch": statistics.mean(result.curve("seconds")),
                     "val_accuracy": result.best_accuracy, "lr": cfg.lr(method)})
        del model
        _free(device)
    return rows, results


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
