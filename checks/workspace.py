"""The `workspace.exists` check: the target's workspace is there and Available."""

from __future__ import annotations

from typing import TYPE_CHECKING

from checks.answers import get_project
from checks.cloudfail import outcome_of
from preflight.cloud.session import NOT_A_WORKSPACE_ID
from preflight.engine.model import Outcome
from preflight.engine.registry import check
from preflight.errors import CloudError

if TYPE_CHECKING:
    from preflight.config.context import CheckContext

DOCS = "https://www.alibabacloud.com/help/en/dataworks/user-guide/serverless-resource-groups"


@check("workspace.exists", "Workspace exists and is Available", depends_on=("cloud.credentials",), plane="control",
       scope="target", tags=("control", "workspace"), timeout_s=30, docs=DOCS,
       proves="GetProject finds the workspace and its status is Available.",
       how="GetProject with the workspace id (the answer cloud.credentials already asked for).",
       failure_means="A wrong workspace id, another region or account, or a frozen/forbidden workspace.",
       fix="Copy the workspace id from DataWorks > Workspaces, and check the target's region.")
async def workspace_exists(context: CheckContext) -> Outcome:
    workspace = context.target.workspace
    if workspace is None:
        return Outcome.skipped("no workspace configured for this target")
    try:
        answer = await get_project(context)
    except CloudError as error:
        if error.code == NOT_A_WORKSPACE_ID:
            return Outcome.failed(f"workspace {workspace!r} is not a workspace id: DataWorks workspace ids are numbers",
                                  "Copy the workspace's numeric id from DataWorks > Workspaces into the target's "
                                  "workspace.", code=error.code)
        if error.code.startswith("Invalid.Tenant.ProjectNotExists"):
            return Outcome.failed(f"workspace {workspace} does not exist in {context.config.region_of(context.target)}",
                                  "Check the workspace id (DataWorks > Workspaces) and the target's region.",
                                  code=error.code, request_id=error.request_id)
        return outcome_of(error, f"GetProject for workspace {workspace}")
    project = answer.get("Project") or {}
    status = project.get("Status")
    evidence = {"id": project.get("Id"), "name": project.get("Name"), "status": status}
    if status != "Available":
        return Outcome.failed(f"workspace {project.get('Name')} ({workspace}) is {status}, not Available",
                              "A Forbidden or Frozen workspace runs no nodes: check billing and the workspace's "
                              "status in DataWorks > Workspaces.", **evidence)
    return Outcome.passed(f"workspace {project.get('Name')} ({workspace}) is Available", **evidence)


CHECKS = (workspace_exists,)
