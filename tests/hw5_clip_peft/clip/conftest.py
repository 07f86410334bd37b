"""Test-only image folders: GENERATED pictures (coloured ellipses on noise) under real breed folder names.

Only tests that ask for the ``generated_dog_folder`` fixture get them; no loader of the package ever makes
images up (a missing dataset is a DataNotFoundError).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hw5_clip_peft.clip.dog_breeds import STANFORD_DOGS_FOLDERS


def write_generated_dog_folder(dest: Path, num_classes: int = 10, per_class: int = 12, size: int = 64,
                               seed: int = 0, classes_file: bool = False) -> Path:
    """Write ``dest/<wnid>-<name>/NNN.png``: one colour + ellipse shape per class; the pixels are not dogs.
    With ``classes_file``, a ``classes.txt`` listing all 120 breeds (like the real sample)."""
    from PIL import Image, ImageDraw

    dest = Path(dest)
    rng = np.random.default_rng(seed)
    folders = STANFORD_DOGS_FOLDERS[:: max(1, len(STANFORD_DOGS_FOLDERS) // num_classes)][:num_classes]
    for k, name in enumerate(folders):
        (dest / name).mkdir(parents=True, exist_ok=True)
        colour = np.array([(k * 97) % 256, (k * 57 + 80) % 256, (k * 31 + 160) % 256])
        for i in range(per_class):
            noise = rng.normal(0, 25, (size, size, 3)) + 128
            image = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8))
            draw = ImageDraw.Draw(image)
            cx, cy = rng.integers(size // 4, 3 * size // 4, 2)
            rx, ry = size // 6 + k % 3 * 3, size // 6 + (k // 3) % 3 * 3
            fill = tuple(int(c) for c in np.clip(colour + rng.integers(-20, 21, 3), 0, 255))
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=fill)
            image.save(dest / name / f"{i:03d}.png")
    if classes_file:
        (dest / "classes.txt").write_text("\n".join(STANFORD_DOGS_FOLDERS) + "\n")
    return dest


@pytest.fixture()
def generated_dog_folder(tmp_path):
    """A factory: ``generated_dog_folder(num_classes=3, per_class=6, size=24)`` -> folder of generated images."""
    return lambda **kwargs: write_generated_dog_folder(tmp_path / "generated_dogs", **kwargs)


@pytest.fixture(scope="module")
def generated_dog_folder_module(tmp_path_factory):
    return lambda **kwargs: write_generated_dog_folder(tmp_path_factory.mktemp("generated_dogs"), **kwargs)
