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


@pytest.fixture(autouse=True)
def _results_database(tmp_path_factory, monkeypatch):
    """Commands record their rows in a results database of the test's own (CNNPROF_DB), never in
    the checkout's reports/cnnprof.db."""
    monkeypatch.setenv("CNNPROF_DB", str(tmp_path_factory.mktemp("db") / "cnnprof.db"))
    # and the commands a test runs in a process of its own keep their reports and models in a
    # folder of the test's, never in the user's ~/.local/share/cnnprof
    monkeypatch.setenv("CNNPROF_HOME", str(tmp_path_factory.mktemp("home")))
