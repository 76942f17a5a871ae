"""boto3 sessions and clients from the standard credential chain (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tracker.aws.errors import translate_aws_error
from tracker.errors import ConfigurationError, one_line


def aws_session(region: str | None = None, profile: str | None = None) -> Any:
    """A boto3 session from the standard chain; raises `ConfigurationError` without a region."""
    import os

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


def aws_client(session: Any, service: str) -> Any:
    from botocore.config import Config

    return session.client(service, config=Config(retries={"mode": "adaptive", "max_attempts": 8}))


class _AwsCalls:
    """Shared helpers: paginated calls with errors translated."""

    def _pages(self, client: Any, operation: str, subject: str, **kwargs: Any) -> Iterator[Mapping[str, Any]]:
        try:
            yield from client.get_paginator(operation).paginate(**kwargs)
        except Exception as error:
            translated = translate_aws_error(error, subject)
            if translated is error:
                raise
            raise translated from error

    def _call(self, client: Any, operation: str, subject: str, **kwargs: Any) -> Mapping[str, Any]:
        try:
            return getattr(client, operation)(**kwargs)
        except Exception as error:
            translated = translate_aws_error(error, subject)
            if translated is error:
                raise
            raise translated from error
