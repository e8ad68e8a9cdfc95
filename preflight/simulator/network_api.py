"""The simulated PrivateZone, PrivateLink and VPC actions: each model's zone, records and endpoints, and vSwitches."""

from __future__ import annotations

from typing import Any

from preflight.simulator.actions import ApiError, WorldActions, paginate
from preflight.simulator.scenarios import SimModel


def eni_ip(model_index: int, vpc_index: int) -> str:
    """The address of the ENI that model `model_index`'s endpoint has in its `vpc_index`th allowed VPC."""
    return f"10.{10 + vpc_index}.{model_index // 250}.{10 + model_index % 250}"


class NetworkActions(WorldActions):
    """The network products' answers for the world's models and VPC bindings."""

    def _models_in(self, vpc_id: str | None) -> list[tuple[int, SimModel]]:
        return [(index, m) for index, m in enumerate(self.world.models) if vpc_id is None or vpc_id in m.allowed_vpcs]

    def describe_zones(self, params: dict[str, str]) -> dict[str, Any]:
        keyword = (params.get("Keyword") or "").lower()
        exact = (params.get("SearchMode") or "LIKE").upper() == "EXACT"  # LIKE (the default) finds substrings
        records = 1 + self.world.zone_extra_records
        zones = [{"ZoneId": f"zone-{m.service_id}", "ZoneName": m.host, "RecordCount": records,
                  "IsPtr": False, "ProxyPattern": "ZONE"} for _, m in self._models_in(params.get("QueryVpcId") or None)
                 if (m.host == keyword if exact else keyword in m.host)]
        page, number, size = paginate(zones, params, 20)
        return {"Zones": {"Zone": page}, "TotalItems": len(zones), "PageNumber": number, "PageSize": size,
                "TotalPages": (len(zones) + size - 1) // size}

    def _zone_model(self, params: dict[str, str]) -> tuple[int, SimModel]:
        """The zone's model and its place in the world (which numbers its record and address)."""
        zone = params.get("ZoneId")
        found = next(((i, m) for i, m in enumerate(self.world.models) if f"zone-{m.service_id}" == zone), None)
        if found is None:
            raise ApiError(400, "Zone.Invalid.Id", "The zone does not exist.")
        return found

    def describe_zone_info(self, params: dict[str, str]) -> dict[str, Any]:
        _, model = self._zone_model(params)
        return {"ZoneId": params.get("ZoneId"), "ZoneName": model.host,
                "BindVpcs": {"Vpc": [{"VpcId": vpc, "RegionId": self.world.region, "VpcName": vpc}
                                     for vpc in model.allowed_vpcs]}}

    def describe_zone_vpc_tree(self, params: dict[str, str]) -> dict[str, Any]:
        """Every zone of the account and the VPCs bound to it, in one answer (the API has no paging)."""
        records = 1 + self.world.zone_extra_records
        zones = [{"ZoneId": f"zone-{m.service_id}", "ZoneName": m.host, "RecordCount": records, "IsPtr": False,
                  "ZoneType": "AUTH_ZONE",
                  "Vpcs": {"Vpc": [{"VpcId": vpc, "RegionId": self.world.region, "VpcName": vpc,
                                    "RegionName": self.world.region} for vpc in m.allowed_vpcs]}}
                 for m in self.world.models]
        return {"Zones": {"Zone": zones}}

    def _zone_records(self, index: int) -> list[dict[str, Any]]:
        """The zone's records: the world's extra ones (hosts synchronised from ECS), then the model's own."""
        extra = [{"RecordId": 100000 + index * 1000 + number, "Rr": f"ecs-host-{number:03d}", "Type": "A",
                  "Value": f"172.16.{index % 250}.{10 + number % 240}", "Status": "ENABLE", "Ttl": 60}
                 for number in range(self.world.zone_extra_records)]
        # The model's name answers with the ENI address of its endpoint in each allowed VPC.
        vpcs = max(1, len(self.world.models[index].allowed_vpcs))
        own = [{"RecordId": index + 1 + 100000 * vpc_index, "Rr": "@", "Type": "A", "Value": eni_ip(index, vpc_index),
                "Status": "ENABLE", "Ttl": 60} for vpc_index in range(vpcs)]
        return [*extra, *own]

    def describe_zone_records(self, params: dict[str, str]) -> dict[str, Any]:
        """One page of the zone's records: PageSize 20 unless asked, at most 100 (the pvtz model's figures)."""
        index, _ = self._zone_model(params)
        records = self._zone_records(index)
        page, number, size = paginate(records, params, 20)
        return {"Records": {"Record": page}, "TotalItems": len(records), "PageNumber": number, "PageSize": size,
                "TotalPages": (len(records) + size - 1) // size}

    def list_vpc_endpoints(self, params: dict[str, str]) -> dict[str, Any]:
        vpc = params.get("VpcId") or None
        endpoints = []
        for _index, model in self._models_in(vpc):
            for vpc_index, allowed in enumerate(model.allowed_vpcs):
                if vpc is not None and allowed != vpc:
                    continue
                endpoint_id = f"ep-{model.service_id}-{vpc_index}"
                endpoints.append({"EndpointId": endpoint_id, "VpcId": allowed, "RegionId": self.world.region,
                                  "EndpointStatus": "Active", "ConnectionStatus": "Connected",
                                  "ServiceName": f"com.aliyuncs.privatelink.{self.world.region}.dataworks-model."
                                                 f"{model.service_id}",
                                  "EndpointDomain": f"{endpoint_id}.{self.world.region}.privatelink.aliyuncs.com",
                                  "EndpointType": "Interface"})
        # Token paging as PrivateLink pages: MaxResults 1 to 1000 (default 50), NextToken until there is none.
        try:
            size = int(params.get("MaxResults") or 50)
            start = int(params.get("NextToken") or 0)
        except ValueError:
            raise ApiError(400, "IllegalParam.NextToken", "The NextToken or MaxResults is invalid.") from None
        if not 1 <= size <= 1000 or not 0 <= start <= len(endpoints):
            raise ApiError(400, "IllegalParam.MaxResults", "The MaxResults or NextToken is out of range.")
        following = start + size if start + size < len(endpoints) else None
        return {"Endpoints": endpoints[start:start + size], "TotalCount": len(endpoints), "MaxResults": size,
                **({"NextToken": str(following)} if following is not None else {})}

    def list_vpc_endpoint_zones(self, params: dict[str, str]) -> dict[str, Any]:
        endpoint_id = params.get("EndpointId") or ""
        for index, model in enumerate(self.world.models):
            for vpc_index, _ in enumerate(model.allowed_vpcs):
                if endpoint_id == f"ep-{model.service_id}-{vpc_index}":
                    return {"Zones": [{"ZoneId": f"{self.world.region}-a", "VSwitchId": "vsw-2ze0first000000001",
                                       "EniIp": eni_ip(index, vpc_index), "ZoneStatus": "Connected",
                                       "EniId": f"eni-{model.service_id}"}], "MaxResults": 50}
        raise ApiError(400, "EndpointNotFound", "The endpoint does not exist.")

    def describe_vswitch(self, params: dict[str, str]) -> dict[str, Any]:
        binding = next((b for b in self.world.bindings if b.vswitch_id == params.get("VSwitchId")), None)
        if binding is None:
            raise ApiError(404, "InvalidVSwitchId.NotFound", "The vSwitch does not exist.")
        return {"VSwitchId": binding.vswitch_id, "VpcId": binding.vpc_id, "CidrBlock": "172.16.0.0/24",
                "Status": "Available", "ZoneId": f"{self.world.region}-a"}


__all__ = ["NetworkActions", "eni_ip"]
