"""Test doubles shipped with persyn, for its own tests and benchmarks and for users' load tests
(nothing in a run imports them)."""
