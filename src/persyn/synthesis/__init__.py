"""Prompt synthesis: generators that write new prompts (and responses) for the student from seed
examples, and the measures that read synthetic data (NormSim relevance and novelty, duplicates).

- ``normsim``: NormSim_p of samples to a target set; relevance, novelty, percentile bands.
- ``dedup``: near-duplicate filters (ROUGE-L, embedding cosine).
- ``self_instruct``: the few-shot meta-prompt and the parser of what a generator writes.
- ``nomad``: a generator trained on (prompt, response) pairs with or without prompt masking.
- ``answers``: answers computed from the prompt (arithmetic by sympy) and majority pseudo-gold.

The stage that runs them is ``persyn.stages.synthesize``.
"""
