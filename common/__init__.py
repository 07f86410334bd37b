"""Shared by every homework package: profile/device/seed, data, batches, the training loop, metrics,
gradient checking and plots. Import what you need from here::

    from common import get_profile, get_device, seed_everything, load_dataset, TensorBatches, fit
"""
from .batches import TensorBatches, channel_stats, random_crop_flip
from .config import (ConfigError, Profile, cache_dir, data_root, download_allowed, get_device, get_profile,
                     seed_everything, torch_threads)
from .data import (DATASETS, CorruptDataError, DataError, DataNotFoundError, Splits, TensorSplit,
                   list_image_folder, load_dataset, load_image, load_image_folder, read_idx, split_off,
                   stratified_indices)
from .gradcheck import numeric_gradient, rel_error, scaled_error
from .metrics import (accuracy, confusion, markdown_table, most_confused, per_class_report,
                      top_k_accuracy)
from .train import History, NonFiniteLossError, StopTraining, evaluate, fit, predict

__all__ = [
    "TensorBatches", "channel_stats", "random_crop_flip",
    "ConfigError", "Profile", "cache_dir", "data_root", "download_allowed", "get_device", "get_profile",
    "seed_everything", "torch_threads",
    "DATASETS", "CorruptDataError", "DataError", "DataNotFoundError", "Splits", "TensorSplit",
    "list_image_folder", "load_dataset", "load_image", "load_image_folder", "read_idx", "split_off",
    "stratified_indices",
    "numeric_gradient", "rel_error", "scaled_error",
    "accuracy", "confusion", "markdown_table", "most_confused", "per_class_report", "top_k_accuracy",
    "History", "NonFiniteLossError", "StopTraining", "evaluate", "fit", "predict",
]
