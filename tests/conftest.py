import pytest


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()


@pytest.fixture
def cli(runner):
    """Invoke the cnnprof command line in-process; returns the click Result."""
    from cnnprof.cli import app

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    return invoke


def pytest_configure(config):
    # One intra-op thread for the whole suite: deterministic, and immune to OpenMP threads
    # spin-waiting against other processes on a shared 2-core machine.
    import torch

    torch.set_num_threads(1)
