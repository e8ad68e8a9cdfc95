"""The config of `preflight run --endpoint URL ...`: one service built from flags and the environment, no file."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from preflight.config.model import KINDS, Config, ServiceConfig, TargetConfig
from preflight.errors import ConfigError


def single_service_config(*, endpoint: str, kind: str, api_key_env: str | None, region: str | None,
                          workspace: str | None, resource_group: str | None, model: str | None,
                          auth: str, environ: Mapping[str, str] | None = None) -> Config:
    """Build the config for `preflight run --endpoint URL ...` without a file."""
    env = os.environ if environ is None else environ
    api_key = None
    if api_key_env:
        if api_key_env not in env:
            raise ConfigError(f"--api-key-env: environment variable {api_key_env} is not set")
        api_key = env[api_key_env]
    if kind not in KINDS:
        raise ConfigError(f"--kind: expected one of {', '.join(KINDS)}")
    if region is None:
        match = re.match(r"^[a-z]+://[^./]+\.([a-z]{2,}(?:-[a-z0-9]+)+)\.dataworks-model\.aliyuncs\.com", endpoint)
        region = match.group(1) if match else "cn-hangzhou"
    service = ServiceConfig(name="service", kind=kind, endpoint=endpoint, model=model, api_key=api_key,
                            api_key_env=api_key_env, auth=auth)
    target = TargetConfig(name="cli", workspace=workspace, resource_group=resource_group, services=(service,))
    return Config(region=region, targets=(target,), path=None)


__all__ = ["single_service_config"]
