"""pytest fixtures for host projects: ``pytest_plugins = ["django_biginterview.testing.pytest_plugin"]``."""
