"""tools/extra.py: the three tools registered later in bench/register_quality.py."""

from __future__ import annotations

import pytest

from tools.extra import body_mass_index, convert_timezone, loan_payment


def test_loan_payment():
    r = loan_payment(200000, 7.1, 30)
    assert r["monthly_payment"] == 1344.06 and r["months"] == 360
    assert loan_payment(1200, 0, 1)["monthly_payment"] == 100.0
    with pytest.raises(ValueError, match="percentage"):
        loan_payment(1000, 150, 1)


def test_body_mass_index():
    assert body_mass_index(75, 180) == {"bmi": 23.1, "category": "normal weight"}
    assert body_mass_index(110, 190)["category"] == "obese"
    with pytest.raises(ValueError):
        body_mass_index(0, 170)


def test_convert_timezone():
    assert convert_timezone("09:30", "Tokyo", "New York") == {"time": "19:30", "day": "previous day",
                                                             "from_city": "Tokyo", "to_city": "New York"}
    assert convert_timezone("23:00", "Honolulu", "Auckland")["day"] == "next day"
    assert convert_timezone("11:00", "New York", "Delhi")["time"] == "21:30"
    with pytest.raises(ValueError, match="unknown city"):
        convert_timezone("10:00", "Atlantis", "Tokyo")
    with pytest.raises(ValueError, match="HH:MM"):
        convert_timezone("3 pm", "London", "Tokyo")
