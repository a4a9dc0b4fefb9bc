"""Helpers for host projects' tests: factory-boy factories and pytest fixtures.

    from django_biginterview.testing.factories import AccountFactory, InterviewFactory

The pytest fixtures (a running sandbox, ...) are in ``django_biginterview.testing.pytest_plugin``;
enable them with ``pytest_plugins = ["django_biginterview.testing.pytest_plugin"]``.
"""
