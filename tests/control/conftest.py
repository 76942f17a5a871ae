"""Fixtures for the execution-control suite: moto in-process executing real state machines."""

from __future__ import annotations

import pytest

from tracker.publish.targets import DirectoryPublisher


@pytest.fixture
def publisher(tmp_path) -> DirectoryPublisher:
    return DirectoryPublisher(tmp_path / "protocol")
