"""Soft prompt: label scores equal the model's own loss, only the virtual tokens train, long reviews fit."""
import pytest
import torch

from hw5_clip_peft.llm.llm_models import load_causal_lm
from hw5_clip_peft.llm.reviews import Review, load_reviews, split_reviews
from hw5_clip_peft.llm.soft_prompt import (LABEL_WORDS, SoftPromptConfig, collate, encode_examples,
                                           evaluate_sentiment, label_log_likelihoods, make_soft_prompt_model,
                                           nearest_tokens, prompt_ids, train_soft_prompt)


@pytest.fixture()
def gpt2(gpt2_dir):
    return load_causal_lm(str(gpt2_dir))


def test_batched_label_scores_equal_the_models_own_loss(gpt2):
    model, tokenizer = gpt2
    reviews = load_reviews()[:3]  # different lengths: the batch is padded
    ll = label_log_likelihoods(model, tokenizer, [r.text for r in reviews], batch_size=4)
    assert ll.shape == (3, 2)
    for i, r in enumerate(reviews):
        for label in (0, 1):
            batch = collate(encode_examples([Review(r.text, label)], tokenizer), tokenizer.pad_token_id)
            n_target = int((batch["labels"] != -100).sum())
            with torch.no_grad():
                loss = model(**batch).loss  # mean cross-entropy over the label-word tokens
            assert torch.allclose(ll[i, label], -loss * n_target, atol=1e-4)


def test_long_reviews_are_cut_to_fit_the_context(gpt2):
    _, tokenizer = gpt2
    long_text = " ".join(["این فیلم خیلی خوب بود"] * 400)
    ids = prompt_ids(tokenizer, long_text, max_text_tokens=50)
    suffix = prompt_ids(tokenizer, "", max_text_tokens=50)
    assert len(ids) == 50 + len(suffix) and ids[-len(suffix):] == suffix


def test_virtual_tokens_are_the_only_trained_parameters_and_they_learn(gpt2, gpt2_dir):
    model, tokenizer = gpt2
    config = SoftPromptConfig(num_virtual_tokens=6, num_epochs=3, lr=0.1, batch_size=8)
    base_before = {n: p.detach().clone() for n, p in model.named_parameters()}
    peft_model, trainable, total = make_soft_prompt_model(model, gpt2_dir, config)
    assert trainable == 6 * model.config.n_embd  # virtual tokens x hidden size, nothing else
    assert total == trainable + sum(p.numel() for p in base_before.values())  # tied output layer counted once
    # text initialisation: the virtual tokens start as the embeddings of the init text's tokens
    init_ids = tokenizer(config.init_text)["input_ids"][:6]
    start = peft_model.get_prompt_embedding_to_save("default").clone()
    assert torch.allclose(start[: len(init_ids)], model.get_input_embeddings().weight[init_ids])
    train, val = split_reviews(load_reviews())
    history = train_soft_prompt(peft_model, tokenizer, train, val, config, "cpu")
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["val_loss"] < history[0]["val_loss"]  # the soft prompt reaches the loss
    assert not torch.allclose(peft_model.get_prompt_embedding_to_save("default"), start)
    for name, p in peft_model.base_model.named_parameters():  # the language model stayed frozen
        assert torch.equal(p, base_before[name])
    near = nearest_tokens(peft_model, tokenizer, k=2)
    assert len(near) == 6 and all(len(row) == 2 and -1 <= row[0][1] <= 1 for row in near)
    result = evaluate_sentiment(peft_model, tokenizer, val)
    assert 0 <= result["accuracy"] <= 1 and 0 <= result["positive_rate"] <= 1


def test_training_prints_no_raw_trainer_dicts(gpt2, gpt2_dir, capsys):
    model, tokenizer = gpt2
    config = SoftPromptConfig(num_virtual_tokens=2, num_epochs=1)
    peft_model, _, _ = make_soft_prompt_model(model, gpt2_dir, config)
    train, val = split_reviews(load_reviews()[:8] + load_reviews()[-8:])
    train_soft_prompt(peft_model, tokenizer, train, val, config)
    out = capsys.readouterr()
    assert "{'loss'" not in out.out and "{'eval_loss'" not in out.out and "Warning" not in out.err


def test_nearest_tokens_skip_embedding_rows_past_the_tokenizer(gpt2_dir):
    from transformers import AutoModelForCausalLM

    model, tokenizer = load_causal_lm(str(gpt2_dir))
    big = AutoModelForCausalLM.from_config(model.config.__class__(**{**model.config.to_dict(),
                                                                     "vocab_size": len(tokenizer) + 500}))
    peft_model, _, _ = make_soft_prompt_model(big, gpt2_dir, SoftPromptConfig(num_virtual_tokens=3))
    with torch.no_grad():  # make the padding rows the closest ones: they must still not be reported
        v = torch.randn(big.config.n_embd, generator=torch.Generator().manual_seed(0))
        big.get_input_embeddings().weight[len(tokenizer):] = v
        peft_model.prompt_encoder["default"].embedding.weight[0] = v
    near = nearest_tokens(peft_model, tokenizer, k=3)
    assert near[0][0][1] < 0.999  # the rows equal to virtual token 0 (cosine 1) are not among its neighbours


def test_zero_virtual_tokens_is_refused(gpt2, gpt2_dir):
    model, _ = gpt2
    with pytest.raises(ValueError, match="num_virtual_tokens"):
        make_soft_prompt_model(model, gpt2_dir, SoftPromptConfig(num_virtual_tokens=0))


def test_label_words_are_the_two_classes():
    assert len(LABEL_WORDS) == 2 and all(w.startswith(" ") for w in LABEL_WORDS)
