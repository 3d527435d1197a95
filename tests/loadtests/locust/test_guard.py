"""Loads go to loopback addresses only; durations parse like Locust's."""

from __future__ import annotations

import socket

import pytest

from loadtests.locust.guard import loopback_problem, parse_duration


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000",
        "http://127.3.2.1:18000/",
        "https://127.0.0.1",
        "http://[::1]:8000",
        "http://[::ffff:127.0.0.1]:8000",
        "http://localhost:8000",
    ],
)
def test_loopback_hosts_are_allowed(url):
    assert loopback_problem(url) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.5:8000", "not a loopback address"),
        ("http://192.0.2.1", "not a loopback address"),
        ("http://0.0.0.0:8000", "not a loopback address"),
        ("http://[::ffff:10.0.0.1]:8000", "not a loopback address"),
        ("http://[2001:db8::1]:8000", "not a loopback address"),
        ("127.0.0.1:8000", "not an http(s) URL"),
        ("ftp://127.0.0.1", "not an http(s) URL"),
        ("http://", "not an http(s) URL"),
        ("http://127.0.0.1:99999", "not a URL"),
    ],
)
def test_other_hosts_are_refused(url, reason):
    problem = loopback_problem(url)
    assert problem is not None and reason in problem


def fake_resolver(table):
    def getaddrinfo(host, port, *args, **kwargs):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 0)) for address in table[host]]

    return getaddrinfo


def test_names_are_judged_by_every_address_they_resolve_to(monkeypatch):
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        fake_resolver({"box.internal": ["127.0.1.1"], "mixed.example": ["127.0.0.1", "203.0.113.9"]}),
    )
    assert loopback_problem("http://box.internal:8000") is None
    assert "non-loopback 203.0.113.9" in loopback_problem("http://mixed.example:8000")
    assert "cannot resolve" in loopback_problem("http://nowhere.example:8000")


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("2m", 120), ("1h30m", 5400), ("1m30s", 90), (" 5S ", 5)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "5 m", "1.5s", "-3", "2d", "m5"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)
