"""Soft prompt and reasoning pipelines on the tiny offline twins (random weights, real tokenizer)."""
import pytest
import torch

from hw5_clip_peft.llm.llm_models import ModelUnavailableError, load_causal_lm, tiny_lm
from hw5_clip_peft.llm.reasoning import (METHODS, ReasoningConfig, accuracy_vs_k, build_prompt, compare_methods)
from hw5_clip_peft.llm.soft_prompt import (SUFFIX, SoftPromptConfig, collate, encode_examples, evaluate_sentiment,
                                       label_log_likelihoods, load_reviews, make_soft_prompt_model,
                                       nearest_tokens, split_reviews, train_soft_prompt)
from hw5_clip_peft.llm.word_problems import generate_problems


@pytest.fixture(scope="module")
def gpt2_twin(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok")
    model, tokenizer = tiny_lm("gpt2", save_dir=folder)
    return model, tokenizer, folder


def test_reviews_are_balanced_and_split_stratified():
    reviews = load_reviews()
    assert len(reviews) == 40 and sum(r.label for r in reviews) == 20
    train, val = split_reviews(reviews, 0.3)
    assert len(val) == 12 and sum(r.label for r in val) == 6
    assert not {r.text for r in train} & {r.text for r in val}


def test_bad_review_file(tmp_path):
    bad = tmp_path / "r.tsv"
    bad.write_text("text\tlabel\nخوب\tgood\n", encoding="utf-8")
    with pytest.raises(ValueError, match="labels must be one of"):
        load_reviews(bad)
    with pytest.raises(FileNotFoundError, match="TSV"):
        load_reviews(tmp_path / "none.tsv")


def test_label_scores_equal_the_models_own_loss(gpt2_twin):
    model, tokenizer, _ = gpt2_twin
    review = load_reviews()[0]
    batch = collate(encode_examples([review], tokenizer), tokenizer.pad_token_id)
    n_target = int((batch["labels"] != -100).sum())
    model.eval()  # no dropout: both sides must see the same function
    with torch.no_grad():
        loss = model(**batch).loss  # mean cross-entropy over the label-word tokens
    ll = label_log_likelihoods(model, tokenizer, [review.text])[0, review.label]
    assert torch.allclose(ll, -loss * n_target, atol=1e-4)


def test_virtual_tokens_trainable_count_and_learning(gpt2_twin, tmp_path):
    model, tokenizer, folder = gpt2_twin
    config = SoftPromptConfig(num_virtual_tokens=6, num_epochs=3, lr=0.1, batch_size=8)
    base_before = {n: p.detach().clone() for n, p in model.named_parameters()}
    peft_model, trainable, total = make_soft_prompt_model(model, folder, config)
    assert trainable == 6 * model.config.n_embd  # virtual tokens x hidden size, nothing else
    assert total == trainable + sum(base_before[n].numel() for n in base_before)
    # text initialisation: the virtual tokens start as the embeddings of the init text's tokens
    init_ids = tokenizer(config.init_text)["input_ids"][:6]
    start = peft_model.get_prompt_embedding_to_save("default")
    assert torch.allclose(start[: len(init_ids)], model.get_input_embeddings().weight[init_ids])
    reviews = load_reviews()
    train, val = split_reviews(reviews)
    _, logs = train_soft_prompt(peft_model, tokenizer, train, val, tmp_path, config)
    eval_losses = [e["eval_loss"] for e in logs if "eval_loss" in e]
    assert len(eval_losses) == 3 and eval_losses[-1] < eval_losses[0]  # the soft prompt changed the loss
    assert not torch.allclose(peft_model.get_prompt_embedding_to_save("default"), start)
    for name, p in peft_model.base_model.named_parameters():  # the language model stayed frozen
        assert torch.equal(p, base_before[name])
    near = nearest_tokens(peft_model, tokenizer, k=2)
    assert len(near) == 6 and all(len(row) == 2 and -1 <= row[0][1] <= 1 for row in near)
    assert 0.0 <= evaluate_sentiment(peft_model, tokenizer, val)["accuracy"] <= 1.0


def test_zero_virtual_tokens_is_refused(gpt2_twin):
    model, _, folder = gpt2_twin
    with pytest.raises(ValueError, match="num_virtual_tokens"):
        make_soft_prompt_model(model, folder, SoftPromptConfig(num_virtual_tokens=0))


def test_missing_model_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="offline.*huggingface-cli download"):
        load_causal_lm("HooshvareLab/gpt2-fa")
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_causal_lm(str(tmp_path / "no-such-model"))


def test_prompts_per_method():
    _, tokenizer = tiny_lm("qwen2")
    problem, *shots = generate_problems(3, seed=1)
    few = build_prompt(tokenizer, problem, "few_shot_cot", shots)
    assert all(s.solution in few for s in shots) and few.endswith("<|im_start|>assistant\n")
    assert "گام به گام" in build_prompt(tokenizer, problem, "zero_shot_cot")
    assert "گام به گام" not in build_prompt(tokenizer, problem, "direct")
    with pytest.raises(ValueError, match="unknown method"):
        build_prompt(tokenizer, problem, "tree_of_thought")


def test_compare_methods_runs_end_to_end():
    model, tokenizer = tiny_lm("qwen2")
    config = ReasoningConfig(num_problems=3, k=3, max_new_tokens=8, direct_max_new_tokens=4, num_shots=1)
    rows, problems = compare_methods(model, tokenizer, config)
    assert [r["method"] for r in rows] == list(METHODS)
    for r in rows:
        assert 0 <= r["accuracy"] <= 1 and r["tokens"] > 0 and r["seconds"] > 0
    sc = rows[-1]
    assert [len(a) for a in sc["answers"]] == [3, 3, 3] and set(sc["accuracy_vs_k"]) == {1, 2, 3}


def test_accuracy_vs_k_votes_on_prefixes():
    problems = generate_problems(2, seed=0)
    a0, a1 = problems[0].answer, problems[1].answer
    answers = [[a0 + 1, a0, a0], [a1, None, a1 + 1]]
    assert accuracy_vs_k(answers, problems) == {1: 0.5, 2: 0.5, 3: 1.0}
