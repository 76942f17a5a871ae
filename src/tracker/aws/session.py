"""boto3 sessions and clients from the standard credential chain (AWS_REGION, AWS_PROFILE,
AWS_ENDPOINT_URL), and `AwsService`, the one way the code calls AWS.

Retries are botocore's own (its `standard` mode: throttling, 5xx answers and dropped connections,
with exponential backoff and jitter), with as many attempts as the run's `RetryPolicy` allows and
bounded connect and read timeouts, so an unreachable endpoint is reported within seconds. What
still fails is translated once, by `tracker.aws.errors.translate_aws_error`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from tracker.aws.errors import translate_aws_error
from tracker.errors import ConfigurationError, one_line
from tracker.retry import RetryPolicy

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 60.0


def aws_session(region: str | None = None, profile: str | None = None) -> Any:
    """A boto3 session from the standard chain; raises `ConfigurationError` without a region."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    # botocore reads AWS_DEFAULT_REGION; AWS_REGION is what the AWS SDKs and Lambda set.
    region = region or os.environ.get("AWS_REGION") or None
    try:
        session = boto3.session.Session(region_name=region, profile_name=profile)
    except ProfileNotFound as error:
        raise ConfigurationError(f"AWS profile not found: {one_line(error)}") from error
    if not session.region_name:
        raise ConfigurationError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION) or pass --region")
    return session


def client_config(policy: RetryPolicy) -> Any:
    """botocore's configuration for a run: standard retries within the policy, bounded timeouts."""
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "total_max_attempts": max(1, policy.attempts)},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
    )


class AwsService:
    """One AWS service client whose calls and paginations raise the tracker's errors."""

    def __init__(self, session: Any, service: str, policy: RetryPolicy | None = None):
        self.client = session.client(service, config=client_config(policy or RetryPolicy()))
        self.region = session.region_name

    def call(self, operation: str, subject: str, **kwargs: Any) -> Mapping[str, Any]:
        """`client.<operation>(**kwargs)`; `subject` names what it concerns in error messages."""
        try:
            return getattr(self.client, operation)(**kwargs)
        except Exception as error:
            raise _translated(error, subject) from error

    def pages(self, operation: str, subject: str, **kwargs: Any) -> Iterator[Mapping[str, Any]]:
        """Every page of a paginated operation."""
        try:
            yield from self.client.get_paginator(operation).paginate(**kwargs)
        except Exception as error:
            raise _translated(error, subject) from error


def _translated(error: Exception, subject: str) -> Exception:
    translated = translate_aws_error(error, subject)
    if translated is error:
        raise error
    return translated
