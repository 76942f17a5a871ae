"""Fixtures for the tracking suite: moto executing real state machines (in-process), a publish
directory and a state directory per test."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from tracking_helpers import create_machine

from tracker.publish.targets import DirectoryPublisher


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
