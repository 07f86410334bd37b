"""hw5.P3: CLIP zero-shot classification of Stanford Dogs with open_clip ConvNeXt models.

``dogs`` (where the data is, official split) + ``breed_names`` (curated ImageNet or raw class names) ->
``clip_models`` (load, weights policy) -> ``features`` (cached image and text features) ->
``templates``/``zero_shot``/``class_embeddings``/``linear_probe``/``coop`` (classifiers on cached features) ->
``studies`` (one function per homework part) -> ``analysis`` (the written findings of a run) ->
``clip_experiments`` (the CLI: ``python -m hw5_clip_peft.clip.clip_experiments``); ``figures`` for the notebook.
"""
