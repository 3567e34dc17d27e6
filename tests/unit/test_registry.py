"""The station's machine registry: parsing, formatting, look-up and assignment."""

import pytest

from tinsnip_tasks.core.registry import (
    DEFAULT_MACHINES,
    assign,
    format_registry,
    lookup,
    next_free,
    parse_registry,
)
from tinsnip_tasks.errors import InputError


def test_parse_ignores_blanks_and_comments():
    text = "# machines of dynamicalsystem\n\nstation=00\ngazette=01\n  lldap = 02  \n# end\n"
    assert parse_registry(text) == {"station": 0, "gazette": 1, "lldap": 2}


def test_format_sorts_by_number_with_two_digits():
    assert format_registry({"web": 12, "gazette": 1, "station": 0}) == (
        "station=00\ngazette=01\nweb=12\n"
    )


def test_format_then_parse_round_trip():
    entries = {"station": 0, "gazette": 1, "lldap": 2, "gateway": 3, "web": 4, "x": 99}
    assert parse_registry(format_registry(entries)) == entries


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("gazette=01\ngarbage\n", 2, "not a 'name=NN' line"),
        ("gazette=\n", 1, "not a 'name=NN' line"),
        ("gazette=1x\n", 1, "not a 'name=NN' line"),
        ("gazette=-1\n", 1, "not a 'name=NN' line"),
        ("=01\n", 1, "name '' is not valid"),
        ("Gazette=01\n", 1, "name 'Gazette' is not valid"),
        ("gazette=100\n", 1, "outside 0..99"),
        ("gazette=01\n\ngazette=04\n", 3, "listed again"),
        ("gazette=01\nlldap=01\n", 2, "given to both 'gazette' and 'lldap'"),
        ("station=05\n", 1, "station is always 00"),
        ("station=00\nweb=00\n", 2, "given to both 'station' and 'web'"),
    ],
    ids=["garbage", "no-number", "not-digits", "negative", "no-name", "bad-name",
         "too-big", "duplicate-name", "duplicate-number", "station-not-0", "zero-taken"],
)
def test_parse_errors_name_source_and_line(text, line, fragment):
    with pytest.raises(InputError) as err:
        parse_registry(text, source="nas:/volume1/ds/station/prod/machine-registry")
    message = str(err.value)
    assert message.startswith(f"nas:/volume1/ds/station/prod/machine-registry, line {line}: ")
    assert fragment in message


def test_lookup_without_registry_uses_defaults():
    assert lookup("station", None) == 0
    assert lookup("gazette", None) == 1
    assert lookup("lldap", None) == 2
    assert lookup("gateway", None) == 3
    assert lookup("web", None) is None


def test_lookup_registry_is_authoritative_even_empty():
    assert lookup("gazette", {}) is None
    assert lookup("station", {}) == 0
    assert lookup("gazette", {"gazette": 7}) == 7


def test_next_free_skips_reserved_and_used():
    assert next_free({}) == 4
    assert next_free(DEFAULT_MACHINES) == 4
    assert next_free({"a": 4, "b": 5, "c": 7}) == 6


def test_next_free_none_left():
    full = {f"m{n}": n for n in range(4, 100)}
    with pytest.raises(InputError, match="no free machine number"):
        next_free(full)


def test_assign_existing_is_unchanged():
    registry = {"station": 0, "gazette": 1}
    number, updated, changed = assign("gazette", registry)
    assert (number, updated, changed) == (1, registry, False)


def test_assign_new_adds_to_a_copy():
    registry = {"station": 0, "gazette": 1, "web": 4}
    number, updated, changed = assign("photos", registry)
    assert (number, changed) == (5, True)
    assert updated == {"station": 0, "gazette": 1, "web": 4, "photos": 5}
    assert registry == {"station": 0, "gazette": 1, "web": 4}


def test_assign_station_is_zero():
    assert assign("station", {}) == (0, {}, False)


def test_assign_refuses_bad_name():
    with pytest.raises(InputError, match="machine name 'Web' is not valid"):
        assign("Web", {})
