"""Montessori-Instruct (arXiv 2410.14208): tuning a prompt generator to the student, with
PerSyn's routing inside the loop. In the order data flows:

- ``probe``: the local data influence of one example on the student (and its loss);
- ``influence``: ``persyn influence``, the warm-up and every example's signals, resumable;
- ``pairs``: preference pairs within each generation request from those signals;
- ``adapt``: ``persyn adapt-generator``, the pairs of a stored influence run, then DPO of the
  generator on them (the trainer: ``persyn.training.dpo``);
- ``loop``: ``synthesis.generator: montessori``, iterations of write → PerSyn → influence →
  adapt, run by ``persyn synthesize``.
"""
