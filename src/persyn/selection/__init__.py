"""Selection strategies: which teacher's response each prompt of the dataset gets.

- ``persyn``: the router (Route-then-Generate; calibration prompts take the Oracle pick). Only
  the routed teacher answers a routed prompt.
- Generate-then-Select (every teacher answers every prompt, then one response is kept):
  ``oracle`` (per-prompt argmax of the Eq. 2 reward), ``grape`` (highest student
  length-normalised log-likelihood, i.e. α = 1; GRAPE, arXiv 2502.04194), ``best-of-n``
  (highest quality, i.e. α = 0).
- One teacher, or a fixed mix, chosen from the calibration set: ``strongest`` (highest mean
  quality), ``family-strong`` (the strongest teacher of the student's ``family``), ``car``
  (highest CAR = mean quality / (1 + β · mean student NLL); arXiv 2411.07133), ``mix``
  (strong : weak data in a fixed ratio, 1 : 4 by default, prompts assigned at random; Mix
  Distillation, arXiv 2502.12143).
- ``random``: a uniformly random teacher per prompt (seeded).

Each strategy is a ``selection.base.Strategy`` in its own module, listed by name in
``persyn.core.plugins.STRATEGIES``. Ties are broken by the next criterion, then the name (``selection.rules``, ``core.ranking``),
never by the order of the config's teacher list.
Responses are shared through the store's cache keys, so running several strategies on one
output directory never generates a response twice.
"""
