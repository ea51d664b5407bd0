"""Shared fixtures: real PostgreSQL and NATS, embedded unless KACT_TEST_*_URL name servers."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from scheduler.embedded import EmbeddedNats, EmbeddedPostgres


def pytest_configure(config: pytest.Config) -> None:
    # Every test runs under pytest-timeout (pyproject: timeout = 300): a hung server or a
    # message that never arrives must fail the run, not stall CI until its own limit.
    if not config.pluginmanager.hasplugin("timeout"):
        raise pytest.UsageError("pytest-timeout is required: pip install -r requirements-dev.lock")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL URL: KACT_TEST_DATABASE_URL, else an embedded server for this session."""
    external = os.environ.get("KACT_TEST_DATABASE_URL")
    if external:
        yield external
        return
    with EmbeddedPostgres(tmp_path_factory.mktemp("postgres")) as server:
        yield server.url


@pytest.fixture(scope="session")
def db_schema(database_url: str) -> Iterator[str]:
    """A schema of this session's own, so runs sharing one server never see each other's tables."""
    name = f"t_{secrets.token_hex(6)}"
    schema = sql.Identifier(name)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(sql.SQL("create schema {}").format(schema))
    yield name
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(sql.SQL("drop schema if exists {} cascade").format(schema))


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A NATS (JetStream) URL: KACT_TEST_NATS_URL, else an embedded server for this session.

    A shared server is shared for real: tests name their streams and subjects randomly."""
    external = os.environ.get("KACT_TEST_NATS_URL")
    if external:
        yield external
        return
    with EmbeddedNats(tmp_path_factory.mktemp("nats")) as server:
        yield server.url
