"""``persyn experiment``: the paper's comparison at small scale, in one command.

For one run configuration (prompts, teacher pool, student): build every strategy's dataset from
a chain of stores (each seed, and each student of ``run.students``, is its own run, its store
started from the previous one's, so no response is generated twice), fine-tune each student on
each dataset with each seed, evaluate every fine-tuned student and the untouched student on a
held-out verifiable set, compare strategies paired over the same prompts and seeds, and write
``results.csv``, ``paired.csv``, ``results.md`` and plots. Optional: a validation split, on
which α (Eq. 2) is chosen by the student's accuracy and the SFT length is measured; router
sweeps over α and calibration size (router top-1 and regret).

Everything is resumable: a dataset, a fine-tuned model's evaluation and a sweep point are each
stored once and skipped on a re-run. Strategies whose datasets are identical share one
fine-tune per seed.

Modules, each depending only on those before it: ``config`` (the experiment YAML),
``plots`` (the PNG figures), ``paired`` (the paired bootstrap), ``comparisons`` (per-prompt
correctness matrices, PerSyn − each strategy, Oracle gain recovered), ``results`` (result rows,
means over seeds, ``results.csv``, ``paired.csv``, ``results.md``), ``finetune`` (the test and
validation splits, ``StudentTrainer``: cached fine-tunes and evaluations) and ``runner``
(``Experiment``: per seed and student a run → datasets → SFT → eval, sweeps).
"""
