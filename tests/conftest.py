"""Fixtures for every test module."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """One torch thread for the whole test session.

    The tests use small networks and matrices: one thread is as fast as several, is not slowed
    to a crawl when other processes compete for the cores (CI machines are shared), and keeps
    CPU results bit-reproducible between runs that are compared (determinism, resume).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
