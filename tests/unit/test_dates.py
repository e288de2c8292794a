"""Dates a conversation states, resolved against today (decoding/dates.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from tokmem_agent.decoding.dates import conversation_dates

SGD_DAY = dt.date(2019, 3, 1)  # a Friday
PACK_DAY = dt.date(2025, 6, 2)  # a Monday


@pytest.mark.parametrize("text, today, dates", [
    ("pick up at half past 9 till the 14th. I want to pick up from Anaheim on March 13th.", SGD_DAY,
     ["2019-03-14", "2019-03-13"]),
    ("from the 2nd of this month until Tuesday next week", SGD_DAY, ["2019-03-02", "2019-03-05"]),
    ("Tuesday next week", PACK_DAY, ["2025-06-10"]),
    ("next Thursday", SGD_DAY, ["2019-03-07", "2019-03-14"]),  # people mean either
    ("on Friday", SGD_DAY, ["2019-03-08"]),  # the next one, not today
    ("I'll need it from 7th of March to March 8th.", SGD_DAY, ["2019-03-07", "2019-03-08"]),
    ("today or tomorrow, the day after tomorrow, yesterday", SGD_DAY,
     ["2019-03-01", "2019-03-02", "2019-03-03", "2019-02-28"]),
    ("in 3 days, a week from today, 3 weeks ago, in two weeks", SGD_DAY,
     ["2019-03-04", "2019-03-08", "2019-02-08", "2019-03-15"]),
    ("my wedding on 20/09/2025", PACK_DAY, ["2025-09-20"]),
    ("03/04/2025", PACK_DAY, ["2025-04-03", "2025-03-04"]),  # day/month and month/day
    ("landed on 20 May 2025, due 2025-06-05, then August 14th 2025", PACK_DAY,
     ["2025-05-20", "2025-06-05", "2025-08-14"]),
    ("by Sunday 8 June", PACK_DAY, ["2025-06-08"]),
    ("on 3 March", PACK_DAY, ["2025-03-03", "2026-03-03"]),  # passed this year: next year's too
    ("the 31st", dt.date(2025, 2, 10), ["2025-03-31"]),  # no 31 February: the next month's
    ("I may need 2 rooms, 30 days before", PACK_DAY, []),
    ("from New Year’s Day 2025 to Valentine’s Day 2025", PACK_DAY, ["2025-01-01", "2025-02-14"]),  # curly
])
def test_conversation_dates(text, today, dates):
    assert [d.isoformat() for d in conversation_dates(text, today)] == dates
