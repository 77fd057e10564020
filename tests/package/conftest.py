import pytest


@pytest.fixture(autouse=True)
def aws():
    """The package tier talks to a moto *server* it starts itself; the in-process mock_aws of the fast tier would
    intercept those calls, so it is off here."""
    yield
