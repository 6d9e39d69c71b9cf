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
