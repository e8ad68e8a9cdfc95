"""Data-plane collectors: they observe, the judges in the check pack decide.

`local` observes from this machine; `script`, `submit` and `follow` run the same observations inside a resource
group, and `logs` and `payload` read them back.
"""

from preflight.probe.observations import NAMES, OBSERVATION_VERSION

__all__ = ["NAMES", "OBSERVATION_VERSION"]
