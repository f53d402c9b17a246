"""Experiments: data sets as records, the lineage from data set to score, sweeps and comparisons.

Sits above scheduler (jobs, pipelines), lending (bookings) and evals (results); nothing below imports it.
See docs/experiments.md.
"""
