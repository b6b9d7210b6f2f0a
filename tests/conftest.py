import pytest


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def s3_mirror():
    """A local S3 server (moto) holding small DICOM files for a few real IDC series."""
    from tests.s3_fixture import start_mirror

    mirror = start_mirror()
    yield mirror
    mirror.server.stop()


@pytest.fixture
def fault_proxy(s3_mirror):
    """A proxy in front of the mirror that can return 5xx, die mid-body, or trickle bytes."""
    from tests.s3_fixture import FaultProxy

    proxy = FaultProxy(s3_mirror.endpoint)
    yield proxy
    if not proxy.dead.is_set():
        proxy.stop()
