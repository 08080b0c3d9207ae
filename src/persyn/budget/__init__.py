"""Routing under a budget: what each (prompt, teacher) is expected to cost (``cost``) and to
earn (``utility``), the assignment that maximises expected reward under spend limits and
teacher capacities (``assign``), and the cost–reward frontier of the calibration set
(``frontier``). ``runtime.budget`` applies them to a run; none of it needs torch."""
