"""athena's OAuth 2.0 client credentials: one token per integration, shared and refreshed.

The token endpoint lives at the server root (``/oauth2/v1/token``), beside ``/v1``; the
client id and secret go in HTTP Basic, the scope in the form. athena sends ``expires_in`` as
a string in some environments and as a number in others.
"""

from __future__ import annotations

from adapters.athena.errors import athena_message
from adapters.athena.values import number
from adapters.contract import IntegrationConfig, SourceError
from adapters.http import RetryingHttp
from adapters.oauth import TokenCache

DEFAULT_SCOPE = "athena/service/Athenanet.MDP.*"


def server_root(base_url: str) -> str:
    """The server root whether the configured URL ends at the host or at ``/v1``."""
    return base_url.rstrip("/").removesuffix("/v1")


def token_cache(config: IntegrationConfig, http: RetryingHttp) -> TokenCache:
    """A TokenCache that asks athena's token endpoint with the integration's credentials."""
    client_id = str(config.credentials.get("client_id") or "")
    secret = str(config.credentials.get("client_secret") or "")
    if not client_id or not secret:
        raise SourceError(
            f"integration {config.name}: athena needs client_id and client_secret credentials",
            retryable=False,
        )
    url = f"{server_root(config.base_url)}/oauth2/v1/token"
    scope = str(config.options.get("scope") or DEFAULT_SCOPE)

    def fetch() -> tuple[str, float]:
        response = http.request(
            "POST",
            url,
            data={"grant_type": "client_credentials", "scope": scope},
            auth=(client_id, secret),
            idempotent=True,  # asking for a token twice is harmless
        )
        if response.status_code != 200:
            raise SourceError(
                f"athena token request refused ({response.status_code}): "
                f"{athena_message(response)}",
                retryable=response.status_code >= 500,
                status=response.status_code,
            )
        body = response.json()
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise SourceError("athena token answer has no access_token", retryable=False)
        return str(token), float(number(body.get("expires_in")) or 3600)

    return TokenCache(fetch)
