"""hw5.P4: a Persian GPT-2 prompt-tuned for sentiment (PEFT), and reasoning methods on Persian word problems.

Run it with ``python -m hw5_clip_peft.llm.run`` (see :mod:`.run`) or the notebook ``LLM.ipynb``, which calls
the same command. Layers: ``run`` (CLI) -> ``experiment`` (the stages, resumable) -> ``soft_prompt`` +
``reviews`` and ``reasoning`` + ``word_problems`` -> ``llm_models`` (where models come from) and ``twins``
(random-weight twins of the real configs, for the quick profile and the tests); ``report`` turns a run's
results into tables, plots and analysis text.
"""
