"""hw5.P5: ViT-Base fine-tuned on Food-101 with LoRA (PEFT), merged for inference.

``food_data`` (hub or folder) -> ``lora`` (model, LoRA, Trainer) -> ``lora_merge`` (merge check, latency) and
``lora_compare`` (LoRA vs head-only vs full fine-tuning).
"""
