"""The config: a YAML file (or flags) loaded into frozen, typed objects, with file:line:field for every error.

`model` holds the objects, `fields` the table the loader and the JSON Schema share, `reader` and `loader` the YAML.
"""

from __future__ import annotations

from preflight.config.fields import (
    MAX_WAIVER_DAYS,
    REGION_PATTERN,
    TOP_FIELDS,
    Field,
    field_of,
)
from preflight.config.flags import single_service_config
from preflight.config.loader import load_config, parse_config, read_config_text
from preflight.config.model import (
    AUTH_MODES,
    KINDS,
    CloudConfig,
    Config,
    DnsConfig,
    Expect,
    HttpConfig,
    InNetworkConfig,
    ServiceConfig,
    TargetConfig,
    Waiver,
)

__all__ = [
    "AUTH_MODES", "KINDS", "MAX_WAIVER_DAYS", "REGION_PATTERN", "TOP_FIELDS", "CloudConfig", "Config", "DnsConfig",
    "Expect", "Field", "HttpConfig", "InNetworkConfig", "ServiceConfig", "TargetConfig", "Waiver", "field_of",
    "load_config", "parse_config", "read_config_text", "single_service_config",
]
