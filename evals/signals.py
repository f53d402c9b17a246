"""Signals of the evals app (for other apps to listen to; the evals app itself calls its services)."""

from django.dispatch import Signal

# Sent after the commit that recorded a result (new or updated): sender=EvalResult, result=<EvalResult>.
eval_result_landed = Signal()
