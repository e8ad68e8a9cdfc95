"""A local stand-in for the DataWorks OpenAPI, the model service and its DNS, with fault scenarios."""

from preflight.simulator.scenarios import SCENARIOS, Scenario, World, get_scenario

__all__ = ["SCENARIOS", "Scenario", "World", "get_scenario"]
