"""The experiment's plots draw whatever the intervals are (no model involved)."""

from persyn.experiment.plots import write_plots


def test_accuracy_plot_takes_a_mean_outside_the_pooled_interval(tmp_path):
    # An untouched student at 0 (Wilson low bound 0 up to rounding) and a mean over seeds
    # above the pooled interval's upper end: matplotlib refuses negative error bars.
    agg = [
        {"strategy": "student (no SFT)", "mean": 0.0, "pooled_low": 1e-18, "pooled_high": 0.08,
         "accs": [0.0], "routing": {}, "generations": 0},
        {"strategy": "persyn", "mean": 0.30, "pooled_low": 0.20, "pooled_high": 0.29,
         "accs": [0.25, 0.35], "routing": {"a": 3, "b": 1}, "generations": 4},
    ]  # fmt: skip
    write_plots(tmp_path, agg, [], ["a", "b"])
    assert (tmp_path / "accuracy.png").stat().st_size > 1000
