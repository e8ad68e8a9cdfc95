"""Endpoint checks: the URL, name resolution, TCP and an unauthenticated HTTP answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from checks.judges.dns import judge_dns
from checks.judges.http import judge_http
from checks.judges.tcp import judge_tcp
from checks.judges.url import judge_url
from checks.observe import observed
from preflight.engine.model import Outcome
from preflight.engine.registry import check

if TYPE_CHECKING:
    from preflight.config.context import CheckContext

DOCS = "https://www.alibabacloud.com/help/en/dataworks/user-guide/model-service"


@check("endpoint.url", "Endpoint URL is a model-service address in the target's region", depends_on=("config.valid",),
       tags=("endpoint", "offline"), timeout_s=5, docs=DOCS, waitable=False,
       proves="The URL is well formed and, for a DataWorks model domain, plain HTTP in the target's region.",
       how="Parses the URL; a DataWorks domain is http://<model-service-id>.<region>.dataworks-model.aliyuncs.com.",
       failure_means="A typo, or an endpoint copied from another region.",
       fix="Copy the endpoint from DataWorks > Model Service > the service's invocation details.")
async def endpoint_url(context: CheckContext) -> Outcome:
    assert context.service is not None
    return judge_url(context.service.endpoint, context.config.region_of(context.target), context.service.auth)


@check("endpoint.dns", "Model domain resolves", depends_on=("endpoint.url",), plane="network",
       tags=("endpoint", "network"), timeout_s=15, docs=DOCS,
       proves="The host name resolves, and to a private or shared address for a model domain.",
       how="Asks dns.nameservers when set (in a VPC: 100.100.2.136/138), dns.resolve overrides, else the system "
           "resolver.",
       failure_means="The model domain resolves only inside VPCs in the model service's allowlist (PrivateZone).",
       fix="Run from the resource group (--from resource-group), or add the group's first VPC to the allowlist.")
async def endpoint_dns(context: CheckContext) -> Outcome:
    grouped = bool(context.target.resource_group)
    return await observed(context, "dns", lambda found: judge_dns(found, resource_group=grouped))


@check("endpoint.tcp", "TCP connection to the endpoint opens", depends_on=("endpoint.dns",), plane="network",
       tags=("endpoint", "network"), timeout_s=15, docs=DOCS,
       proves="A TCP connection to the resolved address and port opens, and how long it takes.",
       how="Connects to each DNS answer in turn with http.connect_timeout_s. The time shown is the kernel's "
           "round trip of the handshake (Linux), which a busy process cannot inflate; elsewhere the time connect() "
           "took here.",
       failure_means="refused: nothing listens (service stopped); timeout: a security group or ACL drops packets; "
                     "unreachable: no route from here.",
       fix="Check the model service's status and the security group it created in the VPC.")
async def endpoint_tcp(context: CheckContext) -> Outcome:
    grouped = bool(context.target.resource_group)
    return await observed(context, "tcp", lambda found: judge_tcp(found, resource_group=grouped))


@check("endpoint.http", "Endpoint answers HTTP and is guarded", depends_on=("endpoint.tcp",), plane="network",
       tags=("endpoint", "network"), timeout_s=15, docs=DOCS,
       proves="An unauthenticated GET /v1/models gets the service's own HTTP answer: any status proves it reachable "
              "(401/403: and guarded); whether it works is the keyed request's to decide.",
       how="Sends GET /v1/models without the key, once endpoint.tcp has passed; redirects are never followed.",
       failure_means="A proxy's error page, a redirect, or no answer at all.",
       fix="Check proxies between here and the service, and the service's status.")
async def endpoint_http(context: CheckContext) -> Outcome:
    return await observed(context, "http", judge_http)


CHECKS = (endpoint_url, endpoint_dns, endpoint_tcp, endpoint_http)
