"""hw5.P4: a Persian GPT-2 prompt-tuned for sentiment (PEFT), and reasoning methods on Persian word problems.

``llm_models`` (load or build the offline twin) -> ``soft_prompt`` (prompt tuning) and ``word_problems`` ->
``reasoning`` (direct, chain-of-thought, few-shot, self-consistency).
"""
