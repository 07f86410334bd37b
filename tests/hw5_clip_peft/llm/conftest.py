"""Twin model folders for the hw5.P4 tests: written once per session with ``save_pretrained``, as a user's
download would be, and loaded through the same code as the real checkpoints."""
import pytest

from hw5_clip_peft.llm.llm_models import REASONING_MODEL, SENTIMENT_MODEL
from hw5_clip_peft.llm.twins import save_twin


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory):
    """Tiny random-weight twin of HooshvareLab/gpt2-fa (its config, shrunk; its tokenizer conventions)."""
    return save_twin(tmp_path_factory.mktemp("gpt2-fa-tiny"), SENTIMENT_MODEL, size="tiny")


@pytest.fixture(scope="session")
def qwen_dir(tmp_path_factory):
    """Tiny random-weight twin of Qwen/Qwen2.5-1.5B-Instruct, with its chat template and generation config."""
    return save_twin(tmp_path_factory.mktemp("qwen-tiny"), REASONING_MODEL, size="tiny")
