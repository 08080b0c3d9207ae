"""One run's HTML report: a single self-contained page (inline CSS, matplotlib PNGs embedded as
base64 data URIs, no scripts, nothing fetched) built from the files ``persyn export`` writes.

Sections: the summary, routing per teacher, calibration quality and learnability per teacher,
the router against the Oracle, spend against the budget with the cost–reward frontier, a
seeded sample of dataset lines, and the selection strategies
under ``strategies/`` when there are any.

Modules, each depending only on those before it: ``load`` (read a run directory), ``compute``
(the numbers the sections show), ``html`` (escaping, tables, the page), ``plots`` (matplotlib
figures as data URIs), ``sections`` (one HTML fragment per section) and ``write``
(``write_report``, the entry point). ``experiment`` (``write_experiment_report``) is the page of
a ``persyn experiment`` directory: accuracy, paired differences with their seed-aware and
prompt-only intervals, accuracy per task, validation choices and the plots.
"""
