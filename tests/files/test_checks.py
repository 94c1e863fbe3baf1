"""What a received file must pass: its URL, its name, its size, its content (pure functions)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from agentchat.errors import FileRefused
from agentchat.files.checks import check_content, check_size, name_in_url, safe_name
from tests.files.test_files_in import png

BASE = "http://localhost:5280/file_share/"


def test_an_upload_of_our_server_gives_its_name() -> None:
    assert name_in_url(BASE + "a1b2/screen%20shot.png", BASE) == "screen shot.png"
    assert name_in_url(BASE + "a1b2/r%C3%A9sum%C3%A9.pdf", BASE) == "résumé.pdf"


@pytest.mark.parametrize(("url", "why"), [
    ("http://evil.example/file_share/a/x.png", "not on this server's upload service"),
    ("https://localhost:5280/file_share/a/x.png", "not on this server's upload service"),
    ("http://localhost:5280@evil.example/file_share/a/x.png", "not on this server's upload service"),
    ("http://localhost:5280/admin_rest/user/admin", "not an upload of this server"),
    (BASE + "a/x.png?download=1", "not an upload of this server"),
    (BASE + "x.png", "not an upload of this server"),
    (BASE + "a/", "not an upload of this server"),
    (BASE + "../admin_rest/x", "has a path in it"),
    (BASE + "a/%2e%2e", "has a path in it"),
    (BASE + "a/..%2F..%2Fetc%2Fpasswd", "has a path in it"),
    (BASE + "a/..%5Cwin.ini", "has a path in it"),
    (BASE + "a/bad%00name", "control characters"),
    (BASE + "a/x%1B%5B31m.txt", "control characters"),
    (BASE + "a/%E2%80%8Bzero-width.txt", "control characters"),
    (BASE + "a/" + "n" * 201, "longer than 200 bytes"),
])
def test_anything_else_is_refused_with_the_reason(url: str, why: str) -> None:
    with pytest.raises(FileRefused, match=why):
        name_in_url(url, BASE)


@settings(max_examples=600)
@given(st.text(max_size=60), st.text(max_size=60))
def test_an_accepted_name_is_one_plain_path_component(slot: str, name: str) -> None:
    from urllib.parse import quote

    for url in (BASE + slot + "/" + name, BASE + quote(slot, safe="") + "/" + quote(name, safe=""), name):
        try:
            accepted = name_in_url(url, BASE)
        except FileRefused:
            continue
        assert accepted not in ("", ".", "..") and "/" not in accepted and "\\" not in accepted
        assert all(ord(c) >= 32 and ord(c) != 127 for c in accepted)


def test_content_decides_the_type_and_must_match_the_name() -> None:
    assert check_content("shot.png", png()).media_type == "image/png"
    assert check_content("shot.png", png()).is_image
    assert check_content("notes", b"plain words\n").media_type == "text/plain"
    assert check_content("blob.bin", b"\x00\x01\x02").media_type == "application/octet-stream"
    assert check_content("untitled", png()).is_image  # no extension: the content says it is a picture
    assert check_content("report.pdf", b"%PDF-1.7 ...").media_type == "application/pdf"
    with pytest.raises(FileRefused, match="named like a PNG but its content is something else"):
        check_content("photo.png", b"<html>hello</html>")
    with pytest.raises(FileRefused, match="named like a JPEG but its content is a PNG"):
        check_content("photo.JPG", png())
    with pytest.raises(FileRefused, match="named like a PDF"):
        check_content("invoice.pdf", b"MZ\x90\x00 a windows program")


def test_size_limit() -> None:
    check_size("a", 10, 10)
    with pytest.raises(FileRefused, match="11 B is over the 10 B limit"):
        check_size("a", 11, 10)


def test_safe_name_refuses_paths_and_controls() -> None:
    assert safe_name("ok.txt") == "ok.txt"
    for bad in ("", ".", "..", "a/b", "a\\b", "a\nb", "\u202egnp.exe"):
        with pytest.raises(FileRefused):
            safe_name(bad)
