"""Drift detection: has the distribution of a call statistic (tokens, latency, cost per call, finish reasons,
error types) changed between a reference window and the current one, per service and model? The tests are in
stattests.py, what is compared in metrics.py, the scheduled job in job.py."""
