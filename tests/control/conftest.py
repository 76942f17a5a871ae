"""Fixtures for the execution-control suite: moto in-process executing real state machines."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from tracker.publish.targets import DirectoryPublisher


@pytest.fixture
def aws(monkeypatch):
    for key, value in {
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.session.Session(region_name="us-east-1")


@pytest.fixture
def publisher(tmp_path) -> DirectoryPublisher:
    return DirectoryPublisher(tmp_path / "protocol")
