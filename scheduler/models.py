"""Clusters, jobs, metrics and evaluations (filled in by the scheduler)."""
