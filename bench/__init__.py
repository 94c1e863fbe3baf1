"""Benchmarks of the gateway against a bare-Prosody baseline, measured in the same run.

``python -m bench.run`` (``make bench``) starts a real Prosody (the test harness's), runs the service
with an instant echo backend (``bench/echo_backend.py``: no model in the loop) and prints a table;
the figures also go to ``bench/results/latest.json``. See docs/performance.md.
"""
