import pytest


@pytest.fixture
def low_limits(settings):
    def apply(**limits):
        settings.SERVICEDESK = {**settings.SERVICEDESK, **limits}

    return apply
