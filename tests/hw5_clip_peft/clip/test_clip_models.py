"""open_clip loading: real architectures resolve, tiny configs build offline, missing weights fail clearly."""
import open_clip
import pytest
import torch

from hw5_clip_peft.clip import clip_models
from hw5_clip_peft.clip.clip_models import (CONVNEXT_BASE, CONVNEXT_BASE_W, CONVNEXT_XXLARGE, TINY, TINY_WIDE,
                                       ClipSpec, MissingWeightsError, architecture_parameters, load_clip,
                                       resolve_weights)


@pytest.fixture()
def offline(monkeypatch, tmp_path):
    """An empty Hugging Face cache, downloads off, no checkpoint variables."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("DLHW_DOWNLOAD", raising=False)
    for spec in (CONVNEXT_BASE, CONVNEXT_BASE_W, CONVNEXT_XXLARGE):
        monkeypatch.delenv(spec.env_var, raising=False)
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))


@pytest.mark.parametrize("spec, embed_dim, image_size",
                         [(CONVNEXT_BASE, 512, 224), (CONVNEXT_BASE_W, 640, 256), (CONVNEXT_XXLARGE, 1024, 256)])
def test_real_architectures_and_tags_exist(spec, embed_dim, image_size):
    assert spec.pretrained in open_clip.list_pretrained_tags_by_model(spec.arch)
    with torch.device("meta"):  # the real architecture, shapes only: no memory, no weights
        model = open_clip.create_model(spec.arch, pretrained=None, device="meta")
        out = model.encode_image(torch.empty(2, 3, image_size, image_size))
    assert model.visual.image_size == (image_size, image_size)
    assert out.shape == (2, embed_dim)
    millions = architecture_parameters(spec)["total"] / 1e6
    assert {"convnext_base": 150 < millions < 153, "convnext_base_w": 175 < millions < 185,
            "convnext_xxlarge": 1190 < millions < 1210}[spec.arch]


def test_missing_weights_message_says_what_and_how(offline):
    with pytest.raises(MissingWeightsError) as info:
        load_clip(CONVNEXT_BASE, device="cpu")
    message = str(info.value)
    for needle in ("convnext_base", "laion400m_s13b_b51k", "not available", "downloads are off",
                   "hf download laion/CLIP-convnext_base-laion400M-s13B-b51K", "checkpoint=",
                   "DLHW_CLIP_CHECKPOINT_CONVNEXT_BASE", "DLHW_DOWNLOAD=1", "quick profile"):
        assert needle in message, needle
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(MissingWeightsError, match="convnext_xxlarge.*laion2b_s34b_b82k_augreg_soup"):
        resolve_weights(CONVNEXT_XXLARGE)


def test_missing_checkpoint_file_is_named(offline, tmp_path, monkeypatch):
    with pytest.raises(MissingWeightsError, match="checkpoint file .*nope.bin does not exist"):
        resolve_weights(CONVNEXT_BASE, checkpoint=tmp_path / "nope.bin")
    monkeypatch.setenv(CONVNEXT_BASE.env_var, str(tmp_path / "env.bin"))
    with pytest.raises(MissingWeightsError, match="env.bin does not exist"):
        resolve_weights(CONVNEXT_BASE)


def test_unknown_tag_is_a_value_error():
    with pytest.raises(ValueError, match="no pretrained tag"):
        resolve_weights(ClipSpec("convnext_base", "made_up_tag", "x"))


def test_tiny_models_build_offline_and_are_seeded():
    a, b, c = load_clip(TINY, device="cpu", seed=0), load_clip(TINY, device="cpu", seed=0), \
        load_clip(TINY, device="cpu", seed=1)
    pa, pb, pc = (torch.cat([p.flatten() for p in m.model.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)
    assert a.weights == "random init (seed 0)" and not a.pretrained
    assert not any(p.requires_grad for p in a.model.parameters())  # frozen: heads train on features
    assert a.embed_dim == 64 and a.logit_scale == pytest.approx(1 / 0.07, rel=1e-5)
    wide = load_clip(TINY_WIDE, device="cpu")
    assert wide.embed_dim == 96


def test_real_tokenizer_ships_with_open_clip():
    bundle = load_clip(TINY, device="cpu")
    tokens = bundle.tokenizer(["a photo of a Chihuahua.", "a photo of a Labrador retriever."])
    assert tokens.shape == (2, 77)
    assert tokens[0, 0] == 49406 and tokens.max() == 49407  # CLIP BPE start/end of text
    assert int(tokens[1].argmax()) > int(tokens[0].argmax())  # the longer name has more tokens


def test_checkpoint_file_path_is_loaded(tmp_path, monkeypatch):
    """The local-checkpoint path, exercised with the tiny architecture standing in for a LAION one."""
    source = load_clip(TINY, device="cpu", seed=5)
    path = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(source.model.state_dict(), path)
    fake_cfg = {"hf_hub": "org/tiny/", "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25),
                "interpolation": "bicubic", "resize_mode": "shortest"}
    monkeypatch.setattr(clip_models, "_hf_repo", lambda spec: ("org/tiny", fake_cfg))
    loaded = load_clip(ClipSpec(TINY.arch, "fake_tag", "tiny from file"), checkpoint=path, device="cpu")
    for p, q in zip(source.model.state_dict().values(), loaded.model.state_dict().values()):
        assert torch.equal(p, q)
    assert "fake_tag (open_clip_pytorch_model.bin)" == loaded.weights
    assert "0.25" in repr(loaded.preprocess)  # the tag's normalisation is applied to a file checkpoint too
