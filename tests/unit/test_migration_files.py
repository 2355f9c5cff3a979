"""haggle.runtime.db: migration file numbering and schema names, checked before any SQL runs.

The runner against real PostgreSQL is tests/integration/test_migrations.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from haggle.runtime.db import check_schema, migration_files


def folder(tmp_path: Path, *names: str) -> Path:
    for name in names:
        (tmp_path / name).write_text("SELECT 1;\n")
    return tmp_path


def test_files_come_back_in_number_order(tmp_path: Path) -> None:
    found = migration_files(
        folder(
            tmp_path,
            "002_more.sql",
            "001_first.sql",
            "010_tenth.sql",
            *[f"{n:03d}_x{n}.sql" for n in range(3, 10)],
        )
    )
    assert [n for n, _ in found] == list(range(1, 11))
    assert found[0][1].name == "001_first.sql"


def test_other_files_are_not_migrations(tmp_path: Path) -> None:
    found = migration_files(folder(tmp_path, "001_first.sql", "README.md", "notes.txt"))
    assert [p.name for _, p in found] == ["001_first.sql"]


def test_an_empty_folder_has_no_migrations(tmp_path: Path) -> None:
    assert migration_files(tmp_path) == []


@pytest.mark.parametrize(
    "bad",
    [
        "1_first.sql",
        "0001_first.sql",
        "001-first.sql",
        "001_First.sql",
        "abc.sql",
        "001_.sql",
        "001_first.SQL.sql",
    ],
)
def test_a_badly_named_migration_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match=r"is not named NNN_name\.sql"):
        migration_files(folder(tmp_path, bad))


def test_two_migrations_with_one_number_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duplicate migration numbers"):
        migration_files(folder(tmp_path, "001_first.sql", "002_a.sql", "002_b.sql"))


def test_a_gap_in_the_numbers_is_refused(tmp_path: Path) -> None:
    # A gap is how a migration written on one branch lands after a later one was applied elsewhere.
    with pytest.raises(ValueError, match="missing migration 002"):
        migration_files(folder(tmp_path, "001_first.sql", "003_third.sql"))


@pytest.mark.parametrize("first", ["000_zero.sql", "002_second.sql"])
def test_numbering_starts_at_001(tmp_path: Path, first: str) -> None:
    with pytest.raises(ValueError, match=r"missing migration 001.*start at 001"):
        migration_files(folder(tmp_path, first))


@pytest.mark.parametrize("schema", ["listing", "a", "settlement_v2", "x" * 41])
def test_plain_schema_names_are_accepted(schema: str) -> None:
    assert check_schema(schema) == schema


@pytest.mark.parametrize("schema", ["", "Listing", "1abc", "_x", "a-b", "a;drop table x", "x" * 42, "a b"])
def test_unsafe_schema_names_are_refused(schema: str) -> None:
    with pytest.raises(ValueError, match="invalid schema name"):
        check_schema(schema)
