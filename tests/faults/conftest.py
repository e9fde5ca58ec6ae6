"""Fixtures of the fault suite: a cluster of real `sirena` processes on the test's own database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from alerting.base.settings import Settings
from tests.cluster import Cluster
from tests.conftest import carriers_toml

N = 5000  # recipients per case: the minimum


def fault_carriers(ports: dict[str, int], *, response_timeout_s: int = 10, **kwargs: object) -> str:
    """carriers_toml with a response timeout long enough that a loaded CI machine's slow answers
    are not taken for a dead link: each case's duplicates then come from its own fault only.
    (The black-hole case keeps the short timeout: timeouts are its fault.)"""
    return carriers_toml(ports, **kwargs).replace("response_timeout_s = 3",  # type: ignore[arg-type]
                                                  f"response_timeout_s = {response_timeout_s}")


def start_cluster(settings: Settings, carriers_text: str, tmp_path: Path) -> Cluster:
    """Write the carriers file, register its senders, return a Cluster (no process started yet)."""
    return Cluster.with_carriers(settings, carriers_text, tmp_path)


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """make_cluster(settings, carriers_text) → Cluster; every process it started is stopped afterwards."""
    made: list[Cluster] = []

    def make(settings: Settings, carriers_text: str) -> Cluster:
        cluster = start_cluster(settings, carriers_text, tmp_path)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.stop()


@pytest.fixture
def cluster(committed_db, redis_db, simulator, make_cluster):  # type: ignore[no-untyped-def]
    """The default cluster: alpha and beta, 2 binds of window 50 each, on a committed database."""
    return make_cluster(committed_db, fault_carriers(simulator.ports(), binds=2, window=50))
