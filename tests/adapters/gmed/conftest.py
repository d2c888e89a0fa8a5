"""The default GMED mapping set for tests that do not need their own."""

from __future__ import annotations

import pytest

from mappings.model import MappingSet
from tests.adapters.gmed.gmed_helpers import gmed_mapping


@pytest.fixture
def mapping() -> MappingSet:
    return gmed_mapping()
