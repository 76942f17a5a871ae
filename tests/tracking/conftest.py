"""Fixtures for the tracking suite: moto executing real state machines (in-process), a publish
directory and a state directory per test."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from tracking_helpers import REGION, create_machine

from tracker.publish.targets import DirectoryPublisher


@pytest.fixture
def aws(monkeypatch):
    """moto in-process, executing state machines for real."""
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.session.Session(region_name=REGION)


@pytest.fixture
def machine(aws) -> str:
    return create_machine(aws)


@pytest.fixture
def publisher(tmp_path) -> DirectoryPublisher:
    return DirectoryPublisher(tmp_path / "protocol", "https://localhost:8443")


@pytest.fixture
def state_dir(tmp_path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def read_protocol(tmp_path) -> Callable[[str], dict]:
    return lambda instance_id: json.loads((tmp_path / "protocol" / f"{instance_id}.json").read_text())
