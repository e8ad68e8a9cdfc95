"""The OpenAPI products the tool calls, the packages of their generated clients, and the actions that write."""

from __future__ import annotations

from dataclasses import dataclass

from preflight.actions import ACTIONS


@dataclass(frozen=True, slots=True)
class Product:
    """One OpenAPI product and the package of its generated client; `optional` ones are in the `network` extra."""

    name: str
    package: str
    optional: bool = False


PRODUCTS = {
    "dataworks": Product("dataworks", "alibabacloud_dataworks_public20240518"),
    "pvtz": Product("pvtz", "alibabacloud_pvtz20180101", optional=True),
    "privatelink": Product("privatelink", "alibabacloud_privatelink20200415", optional=True),
    "vpc": Product("vpc", "alibabacloud_vpc20160428", optional=True),
    # Who the credentials belong to: the in-network task's Owner when the config names none.
    "sts": Product("sts", "alibabacloud_sts20150401"),
}
# Read-only policies do not grant these; everything else the tool calls is a Get/List/Describe.
WRITE_ACTIONS = frozenset({"dataworks:ExecuteAdhocWorkflowInstance"})

__all__ = ["ACTIONS", "PRODUCTS", "WRITE_ACTIONS", "Product"]
