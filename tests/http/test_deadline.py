"""The request's deadline: request_timeout_s, or less when the client says so (X-Request-Timeout)."""

from __future__ import annotations

import pytest

from service.http.edge import _deadline
from service.http.errors import InvalidRequest
from service.settings import Settings

SETTINGS = Settings(request_timeout_s=30)


def test_the_deadline_is_the_timeout_or_the_clients_shorter_one():
    assert _deadline({}, SETTINGS) == 30
    assert _deadline({"x-request-timeout": "4.5"}, SETTINGS) == 4.5
    assert _deadline({"x-request-timeout": "600"}, SETTINGS) == 30  # never longer than the service allows


@pytest.mark.parametrize("given", ["0", "-1", "soon", "nan", "inf", ""])
def test_a_deadline_that_is_not_a_positive_number_of_seconds_is_refused_clearly(given):
    refusal = _deadline({"x-request-timeout": given}, SETTINGS)
    assert isinstance(refusal, InvalidRequest) and refusal.status == 422
    assert "X-Request-Timeout must be a number of seconds above 0" in refusal.message
