"""Routers: learn from the calibration set which teacher to send each prompt to, and route.

Kinds (``router.kind``; the plug-in table ``core.plugins.ROUTERS``): ``prior`` (the best single
teacher for every prompt), ``bt-linear`` and ``bt-encoder`` (Bradley–Terry coefficient routers,
PerSyn Eq. 3, on frozen prompt embeddings or a fine-tuned encoder), ``knn`` (the rewards of the
nearest calibration prompts); ``auto`` cross-validates them (``router.cv``) and routes with a
learned kind only where it beats the best single teacher. ``router.base``: the contract, the
examples, the regret figures and the folds; ``router.embeddings``: the prompt encoder.
"""
