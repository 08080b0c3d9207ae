"""What the stages share, below them: the run's context (config, store, executor, lock, stage
timer), the cache keys of responses, and the services over the store that more than one stage
(or a selection strategy, the estimate, the CLI) asks for: the prompt set (``prompts``),
teacher responses (``responses``), their scores (``scores``), the Eq. 2 reward table and the
router's examples (``rewards``), prompt embeddings, the routing decisions (``routing``), the
verified cascade's walks (``cascade``), the persyn dataset assembled once (``dataset``: what
``export`` writes, the ``persyn`` strategy's lines), the budget's routing and costs (``budget``), the store's
cache commands (``cache``) and batch results (``batch_import``).

Nothing here imports a stage: a stage calls these, never another stage, and
``persyn.stages.ROUTE_THEN_GENERATE`` is the one place that spells the stages' order.
"""
