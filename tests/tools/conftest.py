"""Fixtures for tool tests."""

from __future__ import annotations

import pytest
from tool_helpers import make_session

from medviewer.tools.session import EditSession


@pytest.fixture
def session() -> EditSession:
    return make_session()
