"""Config-driven training scripts run on the cluster. Plain Python: nothing here imports Django."""
