"""Choosing a repository from chat: only directories under the base path, whatever is typed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agentchat.agents.repos import (
    Repository,
    format_repository_list,
    list_repositories,
    resolve_repository,
)
from agentchat.errors import RepositoryError


def make_tree(root: Path) -> Path:
    """A work directory with repositories, a hidden directory, a file and links in and out."""
    base = root / "work"
    outside = root / "outside"
    (outside / "secrets").mkdir(parents=True)
    (base / "api" / ".git").mkdir(parents=True)
    (base / "Web").mkdir()
    (base / "2024").mkdir()
    (base / ".hidden").mkdir()
    (base / "notes.txt").write_text("not a repository")
    (base / "api-link").symlink_to(base / "api")
    (base / "relative-link").symlink_to("Web")
    (base / "escape").symlink_to(outside)
    (base / "escape-relative").symlink_to("../outside/secrets")
    (base / "to-root").symlink_to("/")
    (base / "to-base").symlink_to(".")
    (base / "broken").symlink_to(base / "missing")
    (base / "loop").symlink_to("loop")
    return base


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


def names(repos: list[Repository]) -> list[str]:
    return [repo.name for repo in repos]


def test_lists_directories_sorted_without_hidden_files_or_escaping_links(base: Path) -> None:
    repos = list_repositories(base)
    assert names(repos) == ["2024", "api", "api-link", "relative-link", "Web"]
    assert [repo.is_git for repo in repos] == [False, True, True, False, False]
    real_base = base.resolve()
    assert all(repo.path.is_relative_to(real_base) and repo.path != real_base for repo in repos)
    assert repos[2].path == (base / "api").resolve()


def test_format_marks_git_repositories(base: Path) -> None:
    assert format_repository_list(list_repositories(base)) == (
        "1. 2024\n2. api (git)\n3. api-link (git)\n4. relative-link\n5. Web"
    )


def test_missing_base_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="does not exist: create it .* or set WORK_BASE_PATH"):
        list_repositories(tmp_path / "nowhere")


def test_base_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(RepositoryError, match="not a directory: set WORK_BASE_PATH"):
        list_repositories(tmp_path / "file")


def test_empty_base_says_how_to_add_repositories(tmp_path: Path) -> None:
    assert list_repositories(tmp_path) == []
    message = format_repository_list([], tmp_path)
    assert f"No repositories in {tmp_path} yet" in message
    assert "git clone" in message and "WORK_BASE_PATH" in message


def test_base_reached_through_a_symlink(tmp_path: Path, base: Path) -> None:
    (tmp_path / "work-link").symlink_to(base)
    repos = list_repositories(tmp_path / "work-link")
    assert "api" in names(repos)
    assert resolve_repository(tmp_path / "work-link", "api", repos).path == (base / "api").resolve()


def test_choose_by_number(base: Path) -> None:
    repos = list_repositories(base)
    chosen = resolve_repository(base, " 2 ", repos)
    assert chosen == Repository("api", (base / "api").resolve(), True)


def test_choose_by_name_and_by_capitalised_name(base: Path) -> None:
    repos = list_repositories(base)
    assert resolve_repository(base, "Web", repos).path == (base / "Web").resolve()
    assert resolve_repository(base, "API", repos).name == "api"


def test_a_directory_named_like_a_number_beyond_the_list(base: Path) -> None:
    repos = list_repositories(base)
    assert resolve_repository(base, "2024", repos).name == "2024"
    assert resolve_repository(base, "1", repos).name == "2024"


def test_a_link_inside_the_base_is_followed(base: Path) -> None:
    assert resolve_repository(base, "relative-link", []).path == (base / "Web").resolve()


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        ("", "Give a repository: its number or its name"),
        ("   ", "Give a repository"),
        ("9", "There is no repository number 9: choose 1 to 5"),
        ("0", "There is no repository number 0"),
        ("99999999999999999999", "There is no repository number"),
        ("..", "is a path: give the name of a directory directly under"),
        (".", "is a path"),
        ("../outside", "is a path"),
        ("/etc", "is a path"),
        ("api/../../outside", "is a path"),
        ("a\\b", "is a path"),
        ("~", "is a path"),
        ("~root", "is a path"),
        ("api\nweb", "without control characters"),
        ("api\x00", "without control characters"),
        ("ap\u202ei", "without control characters"),
        (".hidden", "Hidden directories are not offered"),
        ("escape", "is a link to a place outside"),
        ("escape-relative", "is a link to a place outside"),
        ("to-root", "is a link to a place outside"),
        ("to-base", "is a link to a place outside"),
        ("notes.txt", "is a file, not a directory"),
        ("broken", "is gone or is a broken link"),
        ("loop", "Cannot open 'loop'"),
        ("nope", "There is no repository 'nope' in .*; send `repos` to see the choices"),
        ("x" * 300, "too long"),
    ],
)
def test_refusals_are_one_clear_line(base: Path, choice: str, message: str) -> None:
    with pytest.raises(RepositoryError, match=message) as raised:
        resolve_repository(base, choice, list_repositories(base))
    assert "\n" not in str(raised.value)


def test_a_near_miss_gets_a_suggestion(base: Path) -> None:
    with pytest.raises(RepositoryError, match="Did you mean api-link"):
        resolve_repository(base, "api-lnk", list_repositories(base))


def test_a_stale_or_forged_list_is_checked_again(base: Path, tmp_path: Path) -> None:
    forged = [Repository("escape", tmp_path / "outside", False), Repository("../outside", tmp_path, False)]
    with pytest.raises(RepositoryError, match="outside"):
        resolve_repository(base, "1", forged)
    with pytest.raises(RepositoryError, match="is a path"):
        resolve_repository(base, "2", forged)


def test_a_repository_replaced_by_an_escaping_link_after_listing(base: Path, tmp_path: Path) -> None:
    repos = list_repositories(base)
    (base / "Web").rmdir()
    (base / "Web").symlink_to(tmp_path / "outside")
    with pytest.raises(RepositoryError, match="outside"):
        resolve_repository(base, "5", repos)


_TRICKY = [
    "..", "../", "/", "/etc/passwd", "escape", "escape-relative", "to-root", "to-base", "broken", "loop",
    "api", "API", "Web", "1", "2", "5", "6", "0", "-1", "2024", ".hidden", "notes.txt", "~", "\\", "\x00",
    "%2e%2e", "api/..", "./api", "api\n", "\u2028", "\u202e", ".\u200b.",
]  # fmt: skip
choices = st.one_of(
    st.text(max_size=40),
    st.sampled_from(_TRICKY),
    st.tuples(st.sampled_from(_TRICKY), st.text(max_size=5), st.sampled_from(_TRICKY)).map("".join),
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(choice=choices)
@example(choice="escape")
@example(choice="../outside/secrets")
def test_never_returns_a_path_outside_the_base(base: Path, choice: str) -> None:
    real_base = base.resolve()
    listed = list_repositories(base)
    try:
        repo = resolve_repository(base, choice, listed)
    except RepositoryError as error:
        assert str(error) and "\n" not in str(error)
        return
    assert repo.path.is_relative_to(real_base) and repo.path != real_base
    assert repo.path.is_dir()
    assert os.path.realpath(base / repo.name) == str(repo.path)
