"""Shared by every homework package: profile/device/seed, data, batches, the training loop, metrics,
gradient checking and plots. Import what you need from here::

    from common import get_profile, get_device, seed_everything, load_dataset, TensorBatches, fit

Entry points follow one command-line contract (:mod:`common.cli`: validate first, one line and exit 2 on
bad input, exit 130 on Ctrl-C); pretrained models follow one offline/online policy (:mod:`common.pretrained`).
"""
from .batches import TensorBatches, channel_stats, random_crop_flip
from .cli import (Parser, Settings, add_standard_args, check_choice, check_out_file, check_positive,
                  check_writable, command_line, exit_process, parse_widths, progress_enabled, run_cli,
                  standard_settings)
from .config import (Profile, cache_dir, cpu_name, data_root, flush_denormals, get_device, get_profile, machine,
                     machine_text, seed_everything, torch_threads)
from .data import (DATASETS, Splits, TensorSplit, list_image_folder, load_dataset, load_image, load_image_folder,
                   read_idx, split_off, stratified_indices)
from .errors import (CheckpointError, ConfigError, CorruptDataError, DataError, DataNotFoundError,
                     ModelNotFoundError, UsageError, UserError)
from .io import (load_checkpoint, read_json, save_atomic, settings_key, write_bytes_atomic, write_json_atomic,
                 write_text_atomic)
from .gradcheck import numeric_gradient, rel_error, scaled_error
from .metrics import (accuracy, confusion, markdown_table, most_confused, per_class_report,
                      top_k_accuracy)
from .train import (EarlyStopping, History, NonFiniteLossError, StopTraining, count_parameters, evaluate, fit,
                    predict)

__all__ = [
    "TensorBatches", "channel_stats", "random_crop_flip",
    "Parser", "Settings", "add_standard_args", "check_choice", "check_positive", "check_writable",
    "exit_process", "progress_enabled", "run_cli", "standard_settings",
    "Profile", "cache_dir", "data_root", "get_device", "get_profile",
    "seed_everything", "torch_threads", "flush_denormals", "parse_widths", "check_out_file", "command_line",
    "cpu_name", "machine", "machine_text",
    "DATASETS", "Splits", "TensorSplit", "list_image_folder", "load_dataset", "load_image", "load_image_folder",
    "read_idx", "split_off", "stratified_indices",
    "CheckpointError", "ConfigError", "CorruptDataError", "DataError", "DataNotFoundError", "ModelNotFoundError",
    "UsageError", "UserError",
    "load_checkpoint", "read_json", "save_atomic", "settings_key", "write_bytes_atomic", "write_json_atomic",
    "write_text_atomic",
    "numeric_gradient", "rel_error", "scaled_error",
    "accuracy", "confusion", "markdown_table", "most_confused", "per_class_report", "top_k_accuracy",
    "EarlyStopping", "History", "NonFiniteLossError", "StopTraining", "count_parameters", "evaluate", "fit",
    "predict",
]
