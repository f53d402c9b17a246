"""The demo: a synthetic team, its plan, results and GPU bookings (data in demo/data/), the tiny model
staged on the dev cluster, and a stand-in MT-Bench judge.

Installed only when the demo runs (`DEMO=1`, set by `make demo`); it sits above every app but the
wiring and may import any of them, and none imports it.
"""
