"""The model-service simulator on loopback, one per test module that asks for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from preflight.simulator.model_service import ModelService
from preflight.simulator.scenarios import World


@pytest.fixture(scope="module")
def service() -> Iterator[ModelService]:
    server = ModelService(World())
    server.start()
    yield server
    server.stop()
