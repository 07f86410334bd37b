"""hw5.P3: CLIP zero-shot classification of Stanford Dogs with open_clip ConvNeXt models.

``dogs`` (data, official split) -> ``clip_models`` (load, weights policy) -> ``features`` (cached image
features) -> ``templates``/``zero_shot``/``class_embeddings``/``linear_probe``/``coop`` (classifiers on cached
features) -> ``clip_experiments`` (the CLI: ``python -m hw5_clip_peft.clip.clip_experiments``).
"""
