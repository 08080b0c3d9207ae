"""``persyn experiment``: the paper's comparison at small scale, in one command.

For one run configuration (prompts, teacher pool, student): build every strategy's dataset from
one shared store (so no response is generated twice), fine-tune the student on each with each
seed, evaluate every fine-tuned student and the untouched student on a held-out verifiable set,
and write ``results.csv``, ``results.md`` and plots. Optional sweeps: alpha (router figures and
routing per alpha) and calibration size (router top-1 and regret vs calibration size).

Everything is resumable: a dataset, a fine-tuned model's evaluation and a sweep point are each
stored once and skipped on a re-run. Strategies whose datasets are identical share one
fine-tune per seed.

Modules, each depending only on those before it: ``config`` (the experiment YAML),
``plots`` (the PNG figures), ``results`` (result rows, means over seeds, ``results.csv`` and
``results.md``) and ``runner`` (``Experiment``: datasets → SFT → eval, sweeps).
"""
