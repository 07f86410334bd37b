"""Prompt templates for zero-shot Stanford Dogs: plain tuples of format strings, ``{}`` = the class name.

Kept apart from logic (as open_clip keeps its ``zero_shot_metadata``) so a sweep is data, not code.

- ``DEFAULT_TEMPLATE``: part (a)'s single template.
- ``SWEEP_TEMPLATES``: part (b)'s single templates (one template for all classes), 12 of them.
- ``ENSEMBLE_TEMPLATES``: the prompt ensemble, the sweep plus dog-specific phrasings.
- ``CLASS_TEMPLATE_CANDIDATES``: what part (c)'s per-class search may choose from for one class.
- ``imagenet_templates()``: the 80 ImageNet templates of the CLIP paper (Radford et al., 2021), as shipped
  by open_clip, for an ensemble that was *not* written for this dataset.
"""
from __future__ import annotations

DEFAULT_TEMPLATE = "a photo of a {}, a type of dog."

SWEEP_TEMPLATES: tuple[str, ...] = (
    "{}",
    "a photo of a {}.",
    "a photo of a {}, a type of dog.",
    "a photo of the {}, a dog breed.",
    "a photo of a {} dog.",
    "a close-up photo of a {}.",
    "a blurry photo of a {}.",
    "a low resolution photo of a {}.",
    "a photo of my {}.",
    "a cropped photo of a {}.",
    "itap of a {}.",
    "a drawing of a {}.",
)

ENSEMBLE_TEMPLATES: tuple[str, ...] = SWEEP_TEMPLATES + (
    "a photo of a {}, a type of pet.",
    "a good photo of a {}.",
    "a bright photo of a {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
    "a photo of a {} puppy.",
)

# Extra phrasings for a single hard class: breed words, body and setting cues CLIP saw in alt-texts.
CLASS_TEMPLATE_CANDIDATES: tuple[str, ...] = ENSEMBLE_TEMPLATES + (
    "a photo of a purebred {}.",
    "a {} dog breed.",
    "a photo of a dog of the breed {}.",
    "a photo of a {}, a hunting dog.",
    "a photo of a {}, a terrier.",
    "a photo of a {}, a hound.",
    "a photo of a {} at a dog show.",
    "a photo of a {} outdoors.",
)


def imagenet_templates() -> tuple[str, ...]:
    """The CLIP paper's 80 ImageNet templates (``open_clip.zero_shot_metadata``) as ``{}`` strings."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return tuple(template("{}") for template in OPENAI_IMAGENET_TEMPLATES)


def fill(template: str, classnames) -> list[str]:
    """One prompt per class: ``fill("a photo of a {}.", ["pug"]) == ["a photo of a pug."]``."""
    if template.count("{}") != 1:
        raise ValueError(f"template {template!r} must contain exactly one '{{}}' for the class name")
    return [template.format(name) for name in classnames]
