"""hw5.P5: ViT-Base fine-tuned on Food-101 with LoRA (PEFT), merged for inference.

``food_data`` (hub, archive, sample or folder) -> ``lora`` (model, LoRA, prediction) -> ``training`` (the
Trainer) -> ``lora_merge`` (merge check, latency) and ``lora_compare`` (LoRA vs head-only vs full
fine-tuning). ``experiment`` runs these steps into one results dict, ``report`` writes the prose from it, and
``run`` is the command line: ``python -m hw5_clip_peft.vit_lora.run --profile quick|full``.
"""
