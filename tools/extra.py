"""Three tools the demo bank was never trained on, for registering from their schemas alone (issue 17):
what a user adds to a running agent — a typed function with a docstring, no traces.

    tokmem register banks/demo --tool tools.extra     # the three tools of TOOLS
"""

from __future__ import annotations

from typing import Any, Literal

from tokmem_agent import read_only

#: hours from UTC of the places :func:`convert_timezone` knows (fixed offsets: no daylight saving)
UTC_OFFSETS: dict[str, float] = {
    "UTC": 0, "London": 0, "Lisbon": 0, "Paris": 1, "Berlin": 1, "Madrid": 1, "Rome": 1, "Cairo": 2,
    "Athens": 2, "Moscow": 3, "Dubai": 4, "Karachi": 5, "Delhi": 5.5, "Bangkok": 7, "Singapore": 8,
    "Beijing": 8, "Tokyo": 9, "Seoul": 9, "Sydney": 10, "Auckland": 12, "Honolulu": -10, "Anchorage": -9,
    "Los Angeles": -8, "Denver": -7, "Chicago": -6, "New York": -5, "Toronto": -5, "Sao Paulo": -3,
}


@read_only
def loan_payment(principal: float, annual_rate: float, years: float) -> dict[str, Any]:
    """Monthly payment of a fixed-rate loan or mortgage paid off in equal monthly installments.

    Args:
        principal: The amount borrowed.
        annual_rate: Yearly interest rate in percent (5 for 5 %).
        years: How many years the loan runs.
    """
    if principal <= 0 or years <= 0:
        raise ValueError("principal and years must be positive")
    if not 0 <= annual_rate <= 100:
        raise ValueError(f"annual_rate is a percentage between 0 and 100, got {annual_rate}")
    n = round(years * 12)
    r = annual_rate / 100 / 12
    monthly = principal / n if r == 0 else principal * r / (1 - (1 + r) ** -n)
    return {"monthly_payment": round(monthly, 2), "months": n, "total_paid": round(monthly * n, 2),
            "total_interest": round(monthly * n - principal, 2)}


@read_only
def body_mass_index(weight_kg: float, height_cm: float) -> dict[str, Any]:
    """Body mass index (BMI) from a person's weight and height, with its WHO category.

    Args:
        weight_kg: Body weight in kilograms.
        height_cm: Height in centimetres.
    """
    if weight_kg <= 0 or height_cm <= 0:
        raise ValueError("weight_kg and height_cm must be positive")
    bmi = weight_kg / (height_cm / 100) ** 2
    category = ("underweight" if bmi < 18.5 else "normal weight" if bmi < 25 else "overweight" if bmi < 30
                else "obese")
    return {"bmi": round(bmi, 1), "category": category}


@read_only
def convert_timezone(time: str, from_city: str, to_city: str) -> dict[str, Any]:
    """Convert a clock time from one city's time zone to another's (standard time, no daylight saving).

    Args:
        time: The clock time as HH:MM in 24-hour form, e.g. "09:30" or "17:00".
        from_city: The city (or UTC) where that time is local, e.g. "Tokyo".
        to_city: The city (or UTC) to give the time in, e.g. "New York".
    """
    for city in (from_city, to_city):
        if city not in UTC_OFFSETS:
            raise ValueError(f"unknown city {city!r}; known: {', '.join(UTC_OFFSETS)}")
    try:
        hh, mm = (int(x) for x in time.split(":"))
    except ValueError:
        raise ValueError(f"time must be HH:MM, got {time!r}") from None
    if not (0 <= hh < 24 and 0 <= mm < 60):
        raise ValueError(f"time must be HH:MM, got {time!r}")
    minutes = hh * 60 + mm + round((UTC_OFFSETS[to_city] - UTC_OFFSETS[from_city]) * 60)
    day: Literal["previous day", "same day", "next day"] = (
        "previous day" if minutes < 0 else "next day" if minutes >= 24 * 60 else "same day")
    minutes %= 24 * 60
    return {"time": f"{minutes // 60:02d}:{minutes % 60:02d}", "day": day, "from_city": from_city,
            "to_city": to_city}


TOOLS = [loan_payment, body_mass_index, convert_timezone]
