"""Where the hw5.P4 models come from: the real configs on the meta device, twin folders, one-line errors."""
import json
import warnings

import pytest
import torch

from common import ModelNotFoundError, count_parameters
from hw5_clip_peft.llm.llm_models import (REASONING_MODEL, SENTIMENT_MODEL, load_causal_lm, looks_like_hub_id,
                                          resolve_model)
from hw5_clip_peft.llm.reasoning import generate
from hw5_clip_peft.llm.twins import meta_model, real_config


def _qwen2_count(c) -> int:
    """Qwen2 parameters from its config, by hand: q/k/v projections carry a bias, o does not; the output
    layer is tied to the embedding."""
    head = c.hidden_size // c.num_attention_heads
    kv = c.num_key_value_heads * head
    attention = (c.hidden_size * c.hidden_size + c.hidden_size) + 2 * (c.hidden_size * kv + kv) \
        + c.hidden_size * c.hidden_size
    mlp = 3 * c.hidden_size * c.intermediate_size
    layer = attention + mlp + 2 * c.hidden_size  # two RMSNorm weights
    return c.vocab_size * c.hidden_size + c.num_hidden_layers * layer + c.hidden_size


def test_reasoning_model_real_size_on_meta_device():
    model = meta_model(REASONING_MODEL)
    config = real_config(REASONING_MODEL)
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert all(p.device.type == "meta" for p in model.parameters())
    assert count_parameters(model) == _qwen2_count(config)
    # the model card: 1.54 B parameters, 1.31 B without the embedding; GQA with 12 query and 2 kv heads
    assert round(count_parameters(model) / 1e9, 2) == 1.54
    assert round((count_parameters(model) - config.vocab_size * config.hidden_size) / 1e9, 2) == 1.31
    attn = model.model.layers[0].self_attn
    assert (attn.q_proj.weight.shape, attn.k_proj.weight.shape) == ((1536, 1536), (256, 1536))
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied, counted once


def test_sentiment_model_real_size_on_meta_device():
    model = meta_model(SENTIMENT_MODEL)
    c = real_config(SENTIMENT_MODEL)
    layer = 2 * 2 * c.n_embd + (c.n_embd * 3 * c.n_embd + 3 * c.n_embd) + (c.n_embd ** 2 + c.n_embd) \
        + (c.n_embd * 4 * c.n_embd + 4 * c.n_embd) + (4 * c.n_embd * c.n_embd + c.n_embd)
    expected = (c.vocab_size + c.n_positions) * c.n_embd + c.n_layer * layer + 2 * c.n_embd
    assert count_parameters(model) == expected and (c.n_layer, c.n_embd, c.vocab_size) == (12, 768, 42001)


def test_hub_ids_and_paths_are_told_apart(tmp_path):
    assert looks_like_hub_id("HooshvareLab/gpt2-fa") and looks_like_hub_id("Qwen/Qwen2.5-1.5B-Instruct")
    assert not looks_like_hub_id("./models/gpt2") and not looks_like_hub_id(str(tmp_path))
    assert not looks_like_hub_id("a/b/c")


def test_missing_models_are_one_line_errors_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.delenv("DLHW_DOWNLOAD", raising=False)
    with pytest.raises(ModelNotFoundError, match="DLHW_DOWNLOAD=1"):
        resolve_model(None, SENTIMENT_MODEL, flag="--sentiment-model", what="sentiment model")
    with pytest.raises(ModelNotFoundError, match="--reasoning-model .* does not exist"):
        resolve_model(str(tmp_path / "nope"), REASONING_MODEL, flag="--reasoning-model", what="reasoning")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"), SENTIMENT_MODEL, flag="--sentiment-model", what="m")


def test_incomplete_or_wrong_folders_are_refused(tmp_path, gpt2_dir):
    vit = tmp_path / "vit"
    vit.mkdir()
    (vit / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(ModelNotFoundError, match="not a causal language model"):
        resolve_model(str(vit), SENTIMENT_MODEL, flag="--sentiment-model", what="m")
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((gpt2_dir / "config.json").read_text())
    with pytest.raises(ModelNotFoundError, match="no weights"):
        resolve_model(str(no_weights), SENTIMENT_MODEL, flag="--sentiment-model", what="m")
    (no_weights / "model.safetensors").write_bytes((gpt2_dir / "model.safetensors").read_bytes())
    with pytest.raises(ModelNotFoundError, match="no tokenizer"):
        resolve_model(str(no_weights), SENTIMENT_MODEL, flag="--sentiment-model", what="m")
    assert resolve_model(str(gpt2_dir), SENTIMENT_MODEL, flag="--sentiment-model", what="m") == str(gpt2_dir)


def test_gpt2_twin_keeps_gpt2_fa_conventions(gpt2_dir):
    model, tokenizer = load_causal_lm(str(gpt2_dir))
    # gpt2-fa: <|endoftext|> is BOS = EOS = UNK with id 5 in its config, and there is no pad token
    assert tokenizer.convert_tokens_to_ids("<|endoftext|>") == model.config.eos_token_id == 5
    assert json.loads((gpt2_dir / "tokenizer_config.json").read_text()).get("pad_token") is None
    assert tokenizer.pad_token == tokenizer.eos_token and tokenizer.padding_side == "left"  # set on loading
    assert not model.training and model.loss_type == "ForCausalLM"


def test_qwen_twin_generates_without_warnings_and_greedy_is_deterministic(qwen_dir):
    model, tokenizer = load_causal_lm(str(qwen_dir))
    assert model.generation_config.do_sample and model.generation_config.top_k == 20  # Qwen's own defaults
    assert next(model.parameters()).dtype == torch.bfloat16  # published in bfloat16, loaded with dtype="auto"
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "۲ به علاوه‌ی ۳؟"}], tokenize=False,
                                           add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "do_sample is False but temperature is set" would fail here
        first, n1 = generate(model, tokenizer, [prompt, prompt + "x"], max_new_tokens=5, seed=1)
        second, _ = generate(model, tokenizer, [prompt, prompt + "x"], max_new_tokens=5, seed=2)
        sampled, n3 = generate(model, tokenizer, [prompt], max_new_tokens=5, num_return_sequences=3,
                               sample=True)
    assert first == second  # greedy overrides the generation config's sampling
    assert [len(x) for x in first] == [1, 1] and len(sampled[0]) == 3 and 0 < n1 and 0 < n3 <= 15


def test_loading_moves_to_the_device_and_keeps_the_checkpoint_dtype(gpt2_dir):
    model, _ = load_causal_lm(str(gpt2_dir), device="cpu")
    assert next(model.parameters()).dtype == torch.float32 and next(model.parameters()).device.type == "cpu"


def test_a_pytorch_model_bin_folder_loads_like_gpt2_fa_is_published(gpt2_dir, tmp_path):
    """gpt2-fa ships pytorch_model.bin (no safetensors): the folder check accepts it and the weights load
    unchanged, with no warning."""
    import shutil

    model, _ = load_causal_lm(str(gpt2_dir))
    folder = tmp_path / "bin"
    shutil.copytree(gpt2_dir, folder)
    (folder / "model.safetensors").unlink()
    state = {k: v.clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied, as shipped
    torch.save(state, folder / "pytorch_model.bin")
    source = resolve_model(str(folder), SENTIMENT_MODEL, flag="--sentiment-model", what="m")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded, _ = load_causal_lm(source)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
