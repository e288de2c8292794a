"""Numbers with units read from the user's words, and number arguments limited to them (ground_quantities)."""

from __future__ import annotations

import pytest

from tokmem_agent import ConfigError, ControllerConfig
from tokmem_agent.decoding.ground_args import ArgEvidence, ground_schema
from tokmem_agent.decoding.quantities import param_unit, quantity_values, stated_quantities

WEIGHT = {"type": "number", "description": "Body weight in kilograms."}
HEIGHT = {"type": "number", "description": "Height in centimetres."}
RATE = {"type": "number", "description": "Yearly interest rate in percent (5 for 5 %)."}
YEARS = {"type": "number", "description": "How many years the loan runs."}
PRINCIPAL = {"type": "number", "description": "The amount borrowed."}


def values(name, spec, said):
    return quantity_values(name, spec, stated_quantities(said))


@pytest.mark.parametrize("said, name, spec, want", [
    ("bmi for someone 1.65 m tall weighing 68 kilos", "height_cm", HEIGHT, [165]),
    ("bmi for someone 1.65 m tall weighing 68 kilos", "weight_kg", WEIGHT, [68]),
    ("what's the BMI of a man 183 cm tall and 95 kg heavy", "weight_kg", WEIGHT, [95]),  # 183 cm is no weight
    ("I'm 5 ft 10 and weigh 150 pounds", "height_cm", HEIGHT, [177.8]),
    ("I'm 5 ft 10 and weigh 150 pounds", "weight_kg", WEIGHT, [68.04]),
    ("I'm borrowing 250k for a house at 6.5% over 30 years", "principal", PRINCIPAL, [250000]),
    ("I'm borrowing 250k for a house at 6.5% over 30 years", "annual_rate", RATE, [6.5]),
    ("I'm borrowing 250k for a house at 6.5% over 30 years", "years", YEARS, [30]),
    ("car loan of $18,000, 4.9 percent APR, 5 year term — how much a month?", "years", YEARS, [5]),
    ("car loan of $18,000, 4.9 percent APR, 5 year term", "principal", PRINCIPAL, [18000]),
    ("a loan of 2.5 million over 18 months at 3 per cent", "years", YEARS, [1.5]),
    ("a loan of 2.5 million over 18 months at 3 per cent", "principal", PRINCIPAL, [2500000]),
    ("320000 borrowed, 15-year term, 5.75% interest", "years", YEARS, [15]),
    ("for a year", "years", YEARS, [1]),
    ("meeting at 11:00 New York time", "years", YEARS, []),  # a clock time is no number of years
    ("add 2 and 3", "a", {"type": "integer"}, []),  # no unit: left to the other rules
])
def test_quantity_values(said, name, spec, want):
    assert values(name, spec, said) == want


def test_quantities_come_in_the_order_stated():
    qs = stated_quantities("weigh 150 pounds and 5 ft 10 tall")
    assert [q.in_dimension("mass") is not None for q in qs] == [True, False]
    assert qs[1].in_dimension("length") == pytest.approx(1.778)


def test_param_units():
    assert param_unit("weight_kg", {}) == ("mass", 1.0)
    assert param_unit("height_cm", {}) == ("length", 0.01)
    assert param_unit("annual_rate", RATE) == ("percent", 1.0)
    assert param_unit("years", YEARS) == ("duration", 1.0)
    assert param_unit("principal", PRINCIPAL) == ("money", 1.0)
    assert param_unit("min_rating", {"description": "the 1st choice"}) is None  # "min", "st": not units here
    assert param_unit("count", {"description": "how many in the list"}) is None


def test_integer_parameters_take_whole_numbers_and_bounds_hold():
    said = "walk 2.5 km, then 3 km"
    assert values("metres", {"type": "integer"}, said) == [2500, 3000]
    assert values("distance_km", {"type": "integer"}, said) == [3]
    assert values("distance_km", {"type": "number", "maximum": 2.8}, said) == [2.5]


def test_tool_results_count_as_numbers_with_no_unit_after_a_result():
    ev = ArgEvidence.of(["how long to pay off my loan?"], ['{"years": 7.5}'], [{"x": 1}])
    schema = {"type": "object", "properties": {"years": YEARS}, "required": ["years"]}
    assert ground_schema(schema, ev, quantities=True)["properties"]["years"]["enum"] == [7.5]


def test_ground_schema_limits_required_numbers_with_units_only_when_asked():
    schema = {"type": "object", "properties": {"weight_kg": WEIGHT, "height_cm": {**HEIGHT, "minimum": 50}},
              "required": ["weight_kg", "height_cm"]}
    ev = ArgEvidence.of(["Could you check my BMI, I'm 1.58 m and 49 kg"])
    assert ground_schema(schema, ev, optional=False) is schema
    props = ground_schema(schema, ev, optional=False, quantities=True)["properties"]
    assert props["weight_kg"]["enum"] == [49] and props["height_cm"]["enum"] == [158]
    assert "minimum" not in props["height_cm"]  # checked on the values: the enum holds
    empty = ArgEvidence.of(["what's my BMI?"])
    assert ground_schema(schema, empty, optional=False, quantities=True) is schema  # nothing stated: free


def test_config_policy():
    assert ControllerConfig().ground_quantities == "zero_data" and ControllerConfig().lead_answers == "zero_data"
    with pytest.raises(ConfigError, match="ground_quantities"):
        ControllerConfig(ground_quantities="maybe")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="lead_answers"):
        ControllerConfig(lead_answers="maybe")  # type: ignore[arg-type]
