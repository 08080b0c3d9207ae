"""The stages of a run, one module each, in the order data flows through them:

    prepare → calibrate → score → rewards → train_router → route → generate → export

plus ``generate_then_select`` (every teacher on every prompt, for the baselines) and ``cache``;
``responses`` is the teacher-generation machinery they share.
Each stage is a function over a ``RunContext`` (config, store, executor, lock, timing) that
skips what the store already holds, so a re-run after a crash resumes. A stage enters through
``context.stage`` (its preparation and its timing): what is decorated is what ``summary.json``
times, under ``seconds``.
"""
