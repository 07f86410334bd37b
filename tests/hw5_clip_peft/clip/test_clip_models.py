"""open_clip loading: real architectures resolve, tiny configs build offline, weights follow the project's
one pretrained policy, and weight files in both hub formats load strictly (a wrong architecture is refused)."""
import open_clip
import pytest
import torch
from safetensors.torch import save_file

from common import CheckpointError, ModelNotFoundError
from hw5_clip_peft.clip import clip_models
from hw5_clip_peft.clip.clip_models import (CONVNEXT_BASE, CONVNEXT_BASE_W, CONVNEXT_XXLARGE, TINY, TINY_WIDE,
                                            ClipSpec, architecture_parameters, build_on_meta, load_clip,
                                            pretrained_model, read_state_dict, resolve_weights)


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


def test_missing_weights_say_what_and_how(offline):
    with pytest.raises(ModelNotFoundError) as info:
        load_clip(CONVNEXT_BASE, device="cpu", flag="--base-checkpoint")
    message = str(info.value)
    for needle in ("convnext_base", "laion400m_s13b_b51k", "downloads are off",
                   "laion/CLIP-convnext_base-laion400M-s13B-b51K", "--base-checkpoint",
                   "DLHW_CLIP_CHECKPOINT_CONVNEXT_BASE", "DLHW_DOWNLOAD=1"):
        assert needle in message, needle
    with pytest.raises(ModelNotFoundError, match="convnext_xxlarge.*laion2b_s34b_b82k_augreg_soup"):
        resolve_weights(CONVNEXT_XXLARGE)


def test_missing_checkpoint_file_is_named(offline, tmp_path, monkeypatch):
    with pytest.raises(ModelNotFoundError, match="--base-checkpoint .*nope.bin does not exist"):
        resolve_weights(CONVNEXT_BASE, checkpoint=tmp_path / "nope.bin", flag="--base-checkpoint")
    monkeypatch.setenv(CONVNEXT_BASE.env_var, str(tmp_path / "env.bin"))
    with pytest.raises(ModelNotFoundError, match="env.bin does not exist"):
        resolve_weights(CONVNEXT_BASE)
    (tmp_path / "env.bin").write_bytes(b"x")
    assert resolve_weights(CONVNEXT_BASE) == str(tmp_path / "env.bin")  # found; nothing read yet


def test_downloads_on_resolve_to_the_hub_id(offline, monkeypatch):
    monkeypatch.setenv("DLHW_DOWNLOAD", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    assert resolve_weights(CONVNEXT_BASE) == "laion/CLIP-convnext_base-laion400M-s13B-b51K"


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


@pytest.fixture()
def tiny_as_pretrained(monkeypatch):
    """The tiny architecture standing in for a LAION one: a pretrained tag with its own preprocessing."""
    fake_cfg = {"hf_hub": "org/tiny/", "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25),
                "interpolation": "bicubic", "resize_mode": "shortest"}
    monkeypatch.setattr(clip_models, "_hf_repo", lambda spec: ("org/tiny", fake_cfg))
    return ClipSpec(TINY.arch, "fake_tag", "tiny from file")


@pytest.mark.parametrize("filename", ["open_clip_pytorch_model.bin", "open_clip_model.safetensors"])
def test_weight_files_in_both_hub_formats_load(tmp_path, tiny_as_pretrained, filename):
    source = load_clip(TINY, device="cpu", seed=5)
    path = tmp_path / filename
    state = {k: v.contiguous() for k, v in source.model.state_dict().items()}
    save_file(state, path) if path.suffix == ".safetensors" else torch.save(state, path)
    loaded = load_clip(tiny_as_pretrained, checkpoint=path, device="cpu")
    for (k, p), q in zip(source.model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(p, q), k
    assert loaded.weights == f"fake_tag ({filename})"
    assert "0.25" in repr(loaded.preprocess)  # the tag's normalisation is applied to a file checkpoint too
    assert loaded.pretrained and loaded.logit_scale == pytest.approx(source.logit_scale)


def test_weights_id_tells_two_files_of_the_same_name_apart(tmp_path, tiny_as_pretrained):
    state = load_clip(TINY, device="cpu", seed=1).model.state_dict()
    ids = []
    for i in (1, 2):
        path = tmp_path / f"s{i}" / "open_clip_pytorch_model.bin"
        path.parent.mkdir()
        torch.save({k: v + i if k == "logit_scale" else v for k, v in state.items()}, path)
        ids.append(load_clip(tiny_as_pretrained, checkpoint=path, device="cpu").weights_id)
    assert ids[0] != ids[1]  # same file name, other weights: features are never shared between them


def test_wrong_or_corrupt_weight_files_are_checkpoint_errors(tmp_path, tiny_as_pretrained):
    wide = tmp_path / "wide.bin"
    torch.save(load_clip(TINY_WIDE, device="cpu").model.state_dict(), wide)  # another architecture
    with pytest.raises(CheckpointError, match="wide.bin does not fit open_clip 'dlhw-tiny-convnext'"):
        load_clip(tiny_as_pretrained, checkpoint=wide, device="cpu")
    partial = tmp_path / "partial.bin"
    state = load_clip(TINY, device="cpu").model.state_dict()
    torch.save({k: v for k, v in list(state.items())[:-3]}, partial)
    with pytest.raises(CheckpointError, match="3 missing keys"):
        load_clip(tiny_as_pretrained, checkpoint=partial, device="cpu")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        read_state_dict(junk)
    (tmp_path / "junk.bin").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError):
        read_state_dict(tmp_path / "junk.bin")


def test_state_dict_wrappers_are_unwrapped(tmp_path):
    state = {"module.a": torch.zeros(2), "module.b": torch.ones(1)}
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "w.bin")
    assert set(read_state_dict(tmp_path / "w.bin")) == {"a", "b"}


def test_xxlarge_config_shapes_and_loading_path_on_meta():
    """ConvNeXt-XXLarge (1.2 B parameters) is too heavy for a CPU test: its real configuration, the tag's
    preprocessing and load_clip's build-and-load step (``pretrained_model``) run on the meta device."""
    repo, cfg = clip_models._hf_repo(CONVNEXT_XXLARGE)
    assert repo == "laion/CLIP-convnext_xxlarge-laion2B-s34B-b82K-augreg-soup" and cfg["resize_mode"] == "shortest"
    reference = build_on_meta(CONVNEXT_XXLARGE)
    state = {k: torch.empty_like(v) for k, v in reference.state_dict().items()}  # a hub file's keys and shapes
    state["logit_scale"] = state["logit_scale"].reshape(1)  # older files store it 1-d: reshaped, as open_clip does
    model, preprocess = pretrained_model(CONVNEXT_XXLARGE, state, "meta checkpoint", meta=True)
    assert model.visual.image_size == (256, 256) and model.text_projection.shape[1] == 1024
    assert "size=256" in repr(preprocess) and "0.4814" in repr(preprocess) and "bicubic" in repr(preprocess)
    base_state = {k: torch.empty_like(v) for k, v in build_on_meta(CONVNEXT_BASE).state_dict().items()}
    with pytest.raises(CheckpointError, match="base weights does not fit open_clip 'convnext_xxlarge'"):
        pretrained_model(CONVNEXT_XXLARGE, base_state, "base weights", meta=True)
