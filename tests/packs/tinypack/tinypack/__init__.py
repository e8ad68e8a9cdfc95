"""A third-party check pack used by the tests: one check that passes, one that crashes."""

from preflight.engine.model import Outcome
from preflight.engine.registry import Check, check


@check("tiny.ok", "Tiny pack check that passes", depends_on=("config.valid",), scope="target", tags=("tiny",))
async def tiny_ok(context):
    return Outcome.passed(f"tiny pack saw target {context.target.name}")


@check("tiny.crash", "Tiny pack check that raises", scope="target", tags=("tiny",))
async def tiny_crash(context):
    raise RuntimeError("tiny pack exploded while holding DW-ms-canary-in-exception-0001")


def checks() -> list[Check]:
    return [tiny_ok, tiny_crash]
