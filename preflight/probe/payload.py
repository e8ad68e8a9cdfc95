"""What the in-network collector brought back, shaped into the runner's observations: from a followed run's log
or from a saved node log (`ingest`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from preflight.errors import LogFormatError, UsageError
from preflight.probe.logs import decode_payload
from preflight.probe.script import KEY_OBSERVATIONS

if TYPE_CHECKING:
    from preflight.config import Config, TargetConfig


@dataclass(frozen=True)
class Collected:
    """What in-network runs brought back, shaped for the runner."""

    observations: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)


def payload_observations(payload: Mapping[str, Any], config: Config, target: TargetConfig
                         ) -> dict[tuple[str, str], dict[str, Any]]:
    """The runner's observations for one target from a decoded payload (every service gets an entry).

    Raises LogFormatError when the payload does not hold this target: a log from another config or run
    must not pass for this one.
    """
    targets = payload.get("targets")
    observed = targets.get(target.name) if isinstance(targets, dict) else None
    if not isinstance(observed, dict):
        names = ", ".join(sorted(str(name) for name in targets)) if isinstance(targets, dict) else "none"
        raise LogFormatError(f"the observations are not for target {target.name} (they are for: {names or 'none'})")
    shaped: dict[tuple[str, str], dict[str, Any]] = {}
    for service in target.services:
        made = observed.get(service.name)
        # An observation that is not an object cannot be judged; leaving it out lets the check say so.
        shaped[(target.name, service.name)] = ({name: value for name, value in made.items() if isinstance(value, dict)}
                                               if isinstance(made, dict) else {})
    return shaped


def ingest(log: str, config: Config, source: str) -> Collected:
    """Observations from a saved node log (the marked line), for every target of the config it names."""
    payload = decode_payload(log, source=source)
    observed = payload.get("targets")
    if not isinstance(observed, dict):
        raise LogFormatError(f"{source}: the PREFLIGHT-OBSERVATIONS payload holds no targets")
    collected = Collected()
    origin = str(payload.get("origin") or "resource-group:unknown")
    for target in config.targets:
        if target.name in observed:
            try:
                collected.observations.update(payload_observations(payload, config, target))
            except LogFormatError as exc:
                raise LogFormatError(f"{source}: {exc}") from None
            collected.origins[target.name] = origin
            key_sent = any(name in KEY_OBSERVATIONS for (owner, _), made in collected.observations.items()
                           if owner == target.name for name in made)
            collected.observations[(target.name, "")] = {"probe": {"status": "Success", "source": source,
                                                                   "key_sent": key_sent,
                                                                   "python": payload.get("python")}}
    if not collected.origins:
        names = ", ".join(sorted(str(name) for name in observed)) or "none"
        raise UsageError(f"{source}: the log observed targets {names}, none of which is in the config")
    return collected


__all__ = ["Collected", "ingest", "payload_observations"]
