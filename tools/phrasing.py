"""Extra wording for the pack's traces: free phrasings per tool, casual wrappers, and requests that need no tool.

Data only (``make_traces`` uses it). Every pool has a ``train`` and a held-out ``test`` part. The templates
here are written the way people type — preambles, number words, slang currency names, relative dates,
percentages with decimals, splits — to complement the plainer templates of ``make_traces``.
"""

from __future__ import annotations

NUM_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine",
             10: "ten", 11: "eleven", 12: "twelve"}

#: (prefix, suffix) pairs wrapped around a request; "{q}" is the request with its first letter lowered.
CASUAL = {
    "train": ["hey, {q}", "quick question: {q}", "so {q}", "ok so {q}", "hi! {q}", "{q} thanks", "{q} pls",
              "can you help? {q}", "I was wondering — {q}", "um, {q}", "{q} cheers", "right, {q}",
              "need a hand here. {q}", "{q} (quickly please)", "hello, {q}"],
    "test": ["hiya — {q}", "{q} ta", "one more thing: {q}"],
}

#: (template, expression) for calculate; {a} {b} numbers, {p} a percentage, {k} a small exponent, {x} a base
CALC_FREE = {
    "train": [("what's {p}% of {a}", "{a} * {p} / 100"), ("{p} percent of {a}?", "{a} * {p} / 100"),
              ("how much is {p}% of {a}?", "{a} * {p} / 100"), ("{x} to the power of {k}?", "{x} ** {k}"),
              ("{x} raised to the {k}", "{x} ** {k}"), ("what is {x} to the {k}th power", "{x} ** {k}"),
              ("{a} cubed", "{a} ** 3"), ("half of {a}", "{a} / 2"), ("double {a}", "{a} * 2"),
              ("{a} over {b}", "{a} / {b}"), ("{a} plus {b} plus {c}", "{a} + {b} + {c}"),
              ("take {b} away from {a}", "{a} - {b}"), ("increase {a} by {p}%", "{a} * (1 + {p} / 100)"),
              ("what's {a} minus {p}%", "{a} * (1 - {p} / 100)"), ("{a} times {b}, what do you get",
                                                                    "{a} * {b}"),
              ("square root of {a} please", "sqrt({a})"), ("split {a} evenly {n} ways", "{a} / {n}"),
              ("what do {n} lots of {a} come to", "{n} * {a}"), ("{a} divided into {n} equal parts", "{a} / {n}")],
    "test": [("calculate {p} per cent of {a}", "{a} * {p} / 100"), ("{x} to the {k}", "{x} ** {k}"),
             ("{a} with {p}% knocked off", "{a} * (1 - {p} / 100)")],
}
CALC_PERCENTS = [2.5, 7.5, 12.5, 17.5, 3, 8, 15, 33, 45, 60, 22.5, 19]

UNIT_FREE = {
    "train": ["roughly how many {u2} in {q}?", "{q} — how many {u2} would that be?", "what's {q} in {u2} roughly",
              "got {q} here, need it in {u2}", "convert {q} for me, I want {u2}", "is {q} a lot? give it in {u2}",
              "{q} into {u2} please", "how many {u2} make {q}?", "quick conversion: {q} to {u2}"],
    "test": ["need {q} expressed as {u2}", "{q} = ? {u2}"],
}
#: extra spoken names of units (singular forms, abbreviations people type)
UNIT_WORDS_MORE = {
    "km": ["kilometres", "kilometers", "kms"], "mi": ["miles"], "m": ["metres", "meters"], "ft": ["feet", "foot"],
    "kg": ["kilos", "kilograms", "kgs"], "lb": ["pounds", "lbs"], "g": ["grams"], "oz": ["ounces"],
    "l": ["litres", "liters"], "gal": ["gallons"], "ml": ["millilitres", "ml"], "cup": ["cups"],
    "celsius": ["degrees C", "°C", "celsius"], "fahrenheit": ["degrees F", "°F", "fahrenheit"],
    "in": ["inches"], "cm": ["centimetres", "cm"], "yd": ["yards"], "st": ["stone"], "t": ["tonnes"],
    "tbsp": ["tablespoons"], "tsp": ["teaspoons"], "pt": ["pints"], "qt": ["quarts"], "fl_oz": ["fluid ounces"],
    "mm": ["millimetres", "mm"], "mg": ["milligrams"], "kelvin": ["kelvin"],
}

CUR_FREE = {
    "train": ["how many {c2} would I get for {m}?", "I'm travelling — what's {m} in {c2}?", "what would {m} be in {c2}",
              "got {m}, how much is that in {c2}", "{m} → {c2}?", "turn {m} into {c2} for me",
              "what's the {c2} equivalent of {m}?", "how much {c2} is {m} worth"],
    "test": ["roughly what's {m} in {c2} these days?", "{m} in {c2} terms?"],
}
#: extra names people use for currencies (slang included)
CURRENCY_WORDS_MORE = {
    "USD": ["bucks", "dollars", "US dollars"], "GBP": ["quid", "pounds sterling", "pounds"], "EUR": ["euro", "euros"],
    "JPY": ["yen"], "CHF": ["Swiss francs", "francs"], "CAD": ["Canadian dollars"], "AUD": ["Aussie dollars"],
    "CNY": ["yuan", "renminbi"], "INR": ["rupees"], "MXN": ["pesos"], "SEK": ["Swedish krona", "kronor"],
}

#: (template, uses percent, uses people)
TIP_FREE = {
    "train": [("{n} of us, the bill is {b}, {p}% tip — how much does each pay?", True, True),
              ("split {b} between {n} people with a {p}% tip", True, True),
              ("{p} percent tip on a {b} check?", True, False),
              ("we're {n} people and the meal was {b}. with {p}% tip what's each share?", True, True),
              ("what should I pay in total on {b} if I tip {p}%", True, False),
              ("lunch for {n} came to {b}, add {p} percent and divide it up", True, True),
              ("tip on {b}? the usual amount", False, False), ("{b} tab, {p}% tip, total?", True, False),
              ("the {n} of us owe {b} plus a normal tip, what's each person's share", False, True)],
    "test": [("{b} between {n} of us incl. {p}% tip, each?", True, True),
             ("leave a {p}% tip on {b} — total please", True, False)],
}

#: (template, sign, unit "d" days / "w" weeks, base "today" or "date"); {nw} is the count in words
DATE_FREE = {
    "train": [("what's the date {nw} weeks from today?", 1, "w", "today"),
              ("what date is it {nw} days from now", 1, "d", "today"),
              ("what was the date {n} days before {d}?", -1, "d", "date"),
              ("{nw} weeks after {d} is what date?", 1, "w", "date"), ("a fortnight after {d}?", 1, "f", "date"),
              ("what's the date a fortnight from today", 1, "f", "today"),
              ("go back {n} days from {d}", -1, "d", "date"), ("{n} days earlier than {d} was which date?", -1, "d",
                                                               "date"),
              ("in {nw} weeks' time what's the date", 1, "w", "today"),
              ("when is {n} days after {d}?", 1, "d", "date"), ("what was the date {nw} weeks ago?", -1, "w", "today"),
              ("a week from {d}, which day is that?", 1, "1w", "date"), ("date {n} days prior to {d}", -1, "d", "date")],
    "test": [("{nw} weeks on from {d}, what date?", 1, "w", "date"),
             ("which date came {n} days ahead of {d}?", -1, "d", "date")],
}

DAYS_FREE = {
    "train": ["how long is it from {a} to {b} in days?", "how many days do I have left before {b}?",
              "days until {b}?", "how many days separate {a} and {b}", "how many days was it from {a} to {b}",
              "{a} to {b} — how many days is that?", "count the days between {a} and {b} for me"],
    "test": ["what's the day count from {a} to {b}?"],
}
#: templates whose start is today
DAYS_FROM_TODAY = {"how many days do I have left before {b}?", "days until {b}?"}

TODO_FREE = {  # (template, has due date)
    "train": [("can you remind me to {t} on {d}?", True), ("stick '{t}' on my to-do list", False),
              ("don't let me forget to {t} — it's due {d}", True), ("put {t} on the list please", False),
              ("I must {t} before {d}, add that to my tasks", True), ("add to my todos: {t}", False),
              ("make a task: {t}, deadline {d}", True)],
    "test": [("pop '{t}' onto my task list for {d}", True)],
}
LIST_FREE = {  # (template, has due_by)
    "train": [("what have I got on my to-do list?", False), ("anything I still need to do?", False),
              ("show me what's pending", False), ("what tasks are due before {d}?", True),
              ("what's on my list up to {d}?", True), ("give me my todo list", False)],
    "test": [("list whatever I have due by {d}", True)],
}
NOTE_FREE = {
    "train": ["jot this down under '{h}': {x}", "can you save a note called '{h}'? it says: {x}",
              "please remember this, title it {h}: {x}", "make a note '{h}' - {x}"],
    "test": ["keep a note, heading '{h}': {x}"],
}
SEARCH_FREE = {
    "train": ["what was the {k} thing I saved?", "did I save anything about {k}?", "dig up my notes on {k}",
              "I wrote something down about {k}, can you find it?", "notes about {k}?"],
    "test": ["have I got a note that mentions {k}?"],
}

#: No tool serves these: the reply says so (what the pack can do) instead of calling something else.
CANT = ("I can't do that here. I can calculate, convert units and currencies, work with dates, and keep your "
        "to-dos and notes.")
UNSERVED = {
    "train": ["What's the weather like in Paris today?", "Will it rain tomorrow?", "Book me a flight to Rome.",
              "Find me a hotel in Berlin for next weekend.", "Reserve a table for two at 8pm.",
              "Send an email to my boss saying I'm late.", "Text Anna that I'm on my way.", "Play some jazz music.",
              "Set an alarm for 6:30 tomorrow morning.", "Start a 10 minute timer.", "Call my mum.",
              "Order a large pizza.", "What's the Apple stock price right now?", "What's in the news today?",
              "How do I get to the train station from here?", "Translate 'good morning' into French.",
              "Turn off the living room lights.", "Show me pictures of puppies.", "What time is it in Tokyo?",
              "Open Spotify.", "Buy me a new phone charger online.", "Find a good Italian restaurant nearby.",
              "Who won the football match last night?", "Schedule a video call with the team.",
              "Check my bank balance.", "Post this on Instagram.", "Get me an Uber to the airport.",
              "What's the traffic like on the way to work?", "Read my latest messages.", "Download this video."],
    "test": ["Is it going to snow this weekend?", "Book a taxi for 5pm.", "Play the latest Taylor Swift album.",
             "Send a WhatsApp message to Tom.", "What's the score of the tennis final?"],
}
#: Questions near the tools' topics that still need no call: the backbone answers them itself.
NEAR_MISS = {
    "train": ["What is a kilometre?", "Why does the US use miles instead of kilometres?", "What is the euro?",
              "Why do exchange rates change?", "How much should you usually tip in the US?",
              "Is tipping common in Japan?", "Why are there seven days in a week?", "What is a leap year?",
              "How do I keep a good to-do list?", "What's a good way to take notes in a meeting?",
              "What does percent mean?", "What is algebra?", "Who invented the metric system?",
              "Why is a mile longer than a kilometre?", "What's the history of the calendar?",
              "Are notes on paper better than notes on a phone?", "What is a currency?", "What is Fahrenheit?",
              "How do I get better at mental maths?", "Why do people procrastinate?", "What is compound interest?",
              "What's the difference between weight and mass?", "Why is Celsius used in most countries?",
              "Is it rude not to tip?", "What is a calendar month?"],
    "test": ["What's the difference between a pound and a kilogram?", "Why do we have time zones?",
             "What is a fiscal year?", "How can I stop forgetting things?"],
}
