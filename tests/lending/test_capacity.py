"""Whole-node rounding: Slurm 22.05 reserves whole nodes, so a booking of GPUs holds whole nodes' worth."""

from __future__ import annotations

import pytest

from lending.capacity import Capacity
from lending.models import Reservation
from scheduler.models import whole_nodes


@pytest.mark.parametrize(
    ("gpus", "per_node", "nodes"),
    [(0, 8, 0), (1, 8, 1), (8, 8, 1), (9, 8, 2), (16, 8, 2), (3, 1, 3), (3, 0, 3)],
)
def test_gpus_round_up_to_whole_nodes(gpus: int, per_node: int, nodes: int) -> None:
    assert whole_nodes(gpus, per_node) == nodes


def test_a_booking_and_the_capacity_round_the_same_way() -> None:
    cap = Capacity(nodes={"node1": 8, "node2": 8}, unavailable={})
    assert [cap.held_gpus(gpus) for gpus in (0, 1, 8, 9)] == [0, 8, 8, 16]
    booking = Reservation(gpus=9, gpus_per_node=8, nodes=[])
    assert (booking.node_count, booking.held_gpus) == (2, 16)
    assert Reservation(gpus=None, gpus_per_node=8, nodes=[]).node_count == 0
