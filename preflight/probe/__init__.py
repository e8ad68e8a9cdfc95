"""Data-plane collectors: they observe, the judges in the check pack decide."""

from preflight.probe.observations import NAMES, OBSERVATION_VERSION

__all__ = ["NAMES", "OBSERVATION_VERSION"]
