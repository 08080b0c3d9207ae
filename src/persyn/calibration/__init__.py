"""Choosing the calibration set, one way per ``calibration.select``: a seeded uniform draw
(``random``) or k-center greedy coverage of the prompts' embeddings (``diverse``) for the set
``prepare`` fixes (``draw``), and the prompts each ``active`` round adds by router uncertainty
(``active``). The stage that answers the set and runs the rounds is ``stages.calibrate``."""
