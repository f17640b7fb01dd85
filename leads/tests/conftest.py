import pytest

from portals.selectors import forget_all_portals


@pytest.fixture(autouse=True)
def _fresh_portal_cache():
    # The per-process portal cache outlives a test's rolled-back database.
    forget_all_portals()
    yield
    forget_all_portals()
