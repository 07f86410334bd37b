"""IUST HW5: three independent tasks, one subpackage each (they never import each other).

- :mod:`hw5_clip_peft.clip`: hw5.P3, CLIP zero-shot on Stanford Dogs (notebook ``clip_zero_shot.ipynb``).
- :mod:`hw5_clip_peft.llm`: hw5.P4, Persian LLM prompt tuning and reasoning (notebook ``LLM.ipynb``).
- :mod:`hw5_clip_peft.vit_lora`: hw5.P5, ViT + LoRA on Food-101 (notebook ``peft_lora.ipynb``).

Pretrained weights follow :mod:`common.pretrained` (local path, HF cache, or download with DLHW_DOWNLOAD=1).
"""
