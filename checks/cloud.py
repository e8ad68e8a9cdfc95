"""Control-plane checks: credentials, the workspace, and the Serverless resource group."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from checks.cloudfail import outcome_of
from preflight.cloud.session import NOT_A_WORKSPACE_ID, call, is_credential_error, project_id, session
from preflight.engine.model import Outcome
from preflight.engine.registry import check
from preflight.errors import SDK_UNUSABLE, CloudError

if TYPE_CHECKING:
    from preflight.config.context import CheckContext

DOCS = "https://www.alibabacloud.com/help/en/dataworks/user-guide/serverless-resource-groups"
# Codes of calls that got no API answer at all: they prove nothing about the key.
NO_ANSWER = ("Timeout", "ConnectionError", "InvalidResponse", NOT_A_WORKSPACE_ID)
NO_CONTROL = "no workspace or resource_group configured for this target: control-plane checks skip"


async def get_project(context: CheckContext) -> dict[str, Any]:
    assert context.target.workspace is not None
    return await call(context, "dataworks", "GetProject",
                      id=project_id(context.target.workspace, "dataworks:GetProject"))


async def get_resource_group(context: CheckContext) -> dict[str, Any]:
    return await call(context, "dataworks", "GetResourceGroup", id=context.target.resource_group)


async def associated_projects(context: CheckContext) -> dict[str, Any]:
    return await call(context, "dataworks", "ListResourceGroupAssociateProjects",
                      resource_group_id=context.target.resource_group)


@check("cloud.credentials", "Cloud credentials are accepted", depends_on=("config.valid",), plane="control",
       scope="target", tags=("control", "cloud"), timeout_s=30, docs=DOCS,
       proves="The credential chain yields an AccessKey the DataWorks API accepts (the signature verifies).",
       how="Resolves the default chain (or cloud.profile) and signs GetProject (else GetResourceGroup); the answer "
           "is shared with the checks that need it.",
       failure_means="A wrong or disabled AccessKey, a wrong secret (SignatureDoesNotMatch), a clock far off, or no "
                     "credentials at all.",
       fix="Export ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET, or name a profile of ~/.aliyun/config.json in cloud.profile.")
async def credentials(context: CheckContext) -> Outcome:
    target = context.target
    if target.workspace is None and target.resource_group is None:
        return Outcome.skipped(NO_CONTROL)
    cloud = await session(context)
    import asyncio

    from checks.warm import warm

    # Not awaited here: the questions run while this check and others wait; the run's memo hands out the answers.
    context.resources.background(asyncio.ensure_future(warm(context)))
    try:
        identity = await cloud.identity()
    except CloudError as error:
        if error.code != "NoCredentials":
            return outcome_of(error, "resolving the credential chain")
        return Outcome.failed(str(error), "Configure credentials: export ALIBABA_CLOUD_ACCESS_KEY_ID and "
                              "ALIBABA_CLOUD_ACCESS_KEY_SECRET, or set cloud.profile.", code=error.code)
    askers = [("GetProject", get_project)] if target.workspace else []
    if target.resource_group:
        askers.append(("GetResourceGroup", get_resource_group))
    errors: list[CloudError] = []
    for action, ask in askers:
        try:
            await ask(context)
        except CloudError as error:
            if is_credential_error(error):
                outcome = outcome_of(error, f"{action} signed with the key from the {identity.source}, AccessKey id "
                                            f"{identity.access_key_id}")
                return Outcome(outcome.status, outcome.summary, {**outcome.evidence, "provider": identity.provider,
                                                                 "access_key_id": identity.access_key_id},
                               outcome.remediation)
            errors.append(error)
            continue
        # A question that failed for another reason is judged by the check that needs it; say so, not blame it here.
        note = "".join(f"; {e.action.split(':')[-1]} failed with {e.code}, judged by the check that needs it"
                       for e in errors)
        return Outcome.passed(f"{action} accepted the key from the {identity.source}, AccessKey id "
                              f"{identity.access_key_id}{note}", provider=identity.provider,
                              access_key_id=identity.access_key_id, verified_with=action,
                              other_errors=[e.code for e in errors])
    if errors and all(e.code == SDK_UNUSABLE for e in errors):
        return outcome_of(errors[0], f"{errors[0].action.split(':')[-1]} (to verify the key)")
    evidence = {"provider": identity.provider, "access_key_id": identity.access_key_id,
                "errors": {e.action: e.code for e in errors}}
    answered = [e for e in errors if e.code not in NO_ANSWER]
    if not answered:
        # Nothing came back at all, so nothing proves the key either way; the checks that asked report the cause.
        return Outcome.warned(f"cannot tell: no API answer to verify the key from the {identity.source} "
                              f"({', '.join(f'{e.code} on {e.action}' for e in errors)})",
                              "Check cloud.endpoint, cloud.protocol and the network path to the API; the checks "
                              "that need the answers say more.", **evidence)
    last = answered[-1]
    return Outcome.passed(f"the API accepted the signature ({last.code} on {last.action} is judged by the check that "
                          f"needs it); key from the {identity.source}, AccessKey id {identity.access_key_id}",
                          last_code=last.code, **evidence)


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


@check("resource_group.ready", "Resource group is Serverless and Normal", depends_on=("cloud.credentials",),
       plane="control", scope="target", tags=("control", "resource_group"), timeout_s=30, docs=DOCS,
       proves="GetResourceGroup finds the group, its type is CommonV2 (Serverless) and its status Normal.",
       how="GetResourceGroup with the resource group id; asked once per group per run.",
       failure_means="Model services run only on Serverless resource groups; a stopped or frozen group runs nothing.",
       fix="Use a Serverless resource group (DataWorks > Resource Groups), and start or renew it.")
async def resource_group_ready(context: CheckContext) -> Outcome:
    group = context.target.resource_group
    if group is None:
        return Outcome.skipped("no resource_group configured for this target")
    try:
        answer = await get_resource_group(context)
    except CloudError as error:
        return outcome_of(error, f"GetResourceGroup for {group}")
    info = answer.get("ResourceGroup") or {}
    evidence = {key: info.get(key) for key in ("Id", "Name", "ResourceGroupType", "Status", "DefaultVpcId",
                                               "DefaultVswitchId")}
    if info.get("ResourceGroupType") != "CommonV2":
        return Outcome.failed(f"{group} is a {info.get('ResourceGroupType')} group, not Serverless (CommonV2)",
                              "Model services are deployed on and called from Serverless resource groups: create one "
                              "in DataWorks > Resource Groups and use it for the nodes.", **evidence)
    if info.get("Status") != "Normal":
        return Outcome.failed(f"{group} is {info.get('Status')}, not Normal",
                              "Start or renew the resource group in DataWorks > Resource Groups.", **evidence)
    return Outcome.passed(f"{group} is Serverless (CommonV2) and Normal", **evidence)


@check("resource_group.attached", "Resource group is attached to the workspace",
       depends_on=("workspace.exists", "resource_group.ready"), plane="control", scope="target",
       tags=("control", "resource_group"), timeout_s=30, docs=DOCS,
       proves="The workspace is among the workspaces the resource group is associated with.",
       how="ListResourceGroupAssociateProjects for the group.",
       failure_means="Nodes of the workspace cannot run on the group.",
       fix="DataWorks > Resource Groups > the group > Associate Workspace, and choose the workspace.")
async def resource_group_attached(context: CheckContext) -> Outcome:
    target = context.target
    if target.workspace is None or target.resource_group is None:
        return Outcome.skipped("needs both workspace and resource_group")
    try:
        answer = await associated_projects(context)
    except CloudError as error:
        return outcome_of(error, f"ListResourceGroupAssociateProjects for {target.resource_group}")
    attached = [str(project) for project in answer.get("ProjectIdList") or []]
    evidence = {"resource_group": target.resource_group, "workspace": target.workspace, "attached": attached}
    if target.workspace not in attached:
        return Outcome.failed(f"{target.resource_group} is not associated with workspace {target.workspace}",
                              "DataWorks console > Resource Groups > the group > Associate Workspace: add workspace "
                              f"{target.workspace}.", **evidence)
    return Outcome.passed(f"associated with workspace {target.workspace}", **evidence)


CHECKS = (credentials, workspace_exists, resource_group_ready, resource_group_attached)
