"""The run's credentials from the SDK's default chain or a named profile, and where they came from in words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from preflight.engine.text import shorten
from preflight.errors import CloudError

if TYPE_CHECKING:
    from preflight.config import CloudConfig

# The credentials SDK names its providers; say in words where the key came from.
PROVIDER_SOURCES = {
    "env": "environment variables ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET",
    "oidc_role_arn": "OIDC role (ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE)",
    "cli_profile": "CLI profile in ~/.aliyun/config.json",
    "profile": "profile in ~/.alibabacloud/credentials.ini",
    "ecs_ram_role": "ECS RAM role (instance metadata)",
    "credential_uri": "credentials URI (ALIBABA_CLOUD_CREDENTIALS_URI)",
    "ram_role_arn": "assumed RAM role",
    "cloud_sso": "CloudSSO sign-in",
    "oauth": "OAuth sign-in",
    "external": "external credential process",
    "rsa_key_pair": "RSA key pair",
    "static_ak": "static AccessKey",
    "static_sts": "static STS token",
}


@dataclass(frozen=True, slots=True)
class Identity:
    """Where the credentials came from, safe to show: provider name and masked AccessKey id."""

    provider: str
    access_key_id: str

    @property
    def source(self) -> str:
        """The provider in words, with the SDK's chain name in brackets (`default/env`)."""
        return describe_provider(self.provider)


def describe_provider(chain: str) -> str:
    """`default/cli_profile/static_ak` -> 'CLI profile in ~/.aliyun/config.json (default/cli_profile/static_ak)'."""
    names = [name for name in chain.split("/") if name and name != "default"]
    words = PROVIDER_SOURCES.get(names[0], names[0]) if names else "default credential chain"
    return f"{words} ({chain})" if chain else words


def resolve_credentials(cloud: CloudConfig) -> tuple[Any, Identity]:
    """The SDK credential for these settings and where it came from; its secrets are registered for redaction.

    Needs the credentials SDK imported (preflight.cloud.imports); raises CloudError NoCredentials when the chain
    or the named profile yields none.
    """
    import importlib

    from alibabacloud_credentials.client import Client
    from alibabacloud_credentials.utils import auth_util

    from preflight.engine.redact import mask_access_key_id, register_secrets

    # The chain snapshots its environment variables when first imported; read them as they are now, so a caller
    # that sets them later (a demo, an embedding program) is honoured.
    importlib.reload(auth_util)

    try:
        credential = _profile_credential(cloud.profile) if cloud.profile else Client().get_credential()
    except CloudError:
        raise
    except Exception as exc:
        raise CloudError("no credentials: the default chain (environment ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET, OIDC, "
                         "~/.aliyun/config.json, ~/.alibabacloud/credentials.ini, ECS RAM role) yielded none: "
                         f"{shorten(str(exc), 200)}", code="NoCredentials") from None
    register_secrets([(credential.access_key_secret, "access_key_secret"),
                      (credential.security_token, "security_token")])
    provider = str(getattr(credential, "provider_name", "") or "default")
    return credential, Identity(provider, mask_access_key_id(credential.access_key_id or ""))


def _profile_credential(name: str) -> Any:
    """A named profile as ALIBABA_CLOUD_PROFILE selects it: the CLI's config.json first, then credentials.ini."""
    from alibabacloud_credentials.client import Client
    from alibabacloud_credentials.provider.cli_profile import CLIProfileCredentialsProvider
    from alibabacloud_credentials.provider.profile import ProfileCredentialsProvider

    reasons = []
    for provider in (CLIProfileCredentialsProvider(profile_name=name), ProfileCredentialsProvider(profile_name=name)):
        try:
            return Client(provider=provider).get_credential()
        except Exception as exc:  # the SDK raises several unrelated types for a missing file or profile
            reasons.append(shorten(str(exc), 160))
    raise CloudError(f"no credentials: profile {name!r} (cloud.profile) is in neither ~/.aliyun/config.json nor "
                     f"~/.alibabacloud/credentials.ini, or cannot be used: {'; '.join(reasons)}", code="NoCredentials")


__all__ = ["PROVIDER_SOURCES", "Identity", "describe_provider", "resolve_credentials"]
