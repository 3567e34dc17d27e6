"""The station's machine registry: parsing, formatting, look-up and assignment."""

import pytest

from tinsnip_tasks.core.registry import (
    DEFAULT_MACHINES,
    assign,
    format_registry,
    lookup,
    next_free,
    parse_registry,
    resolve,
    seed,
    with_entry,
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
        ("gazette=01\n\ngazette=04\n", 3, "listed again with 04 (first as 01)"),
        ("gazette=01\nlldap=01\n", 2, "given to both 'gazette' and 'lldap'"),
        ("station=05\n", 1, "station is always 00"),
        ("station=00\nweb=00\n", 2, "00 belongs to the station, not 'web'"),
        ("gazette=00\n", 1, "00 belongs to the station, not 'gazette'"),
        ("gateway=03newbox=04", 1, "not a 'name=NN' line"),
        ("web=04\nweb\n=05\n", 2, "not a 'name=NN' line"),
    ],
    ids=["garbage", "no-number", "not-digits", "negative", "no-name", "bad-name",
         "too-big", "duplicate-name", "duplicate-number", "station-not-0", "zero-taken",
         "gazette-00", "glued-lines", "split-line"],
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


def test_accepts_what_people_write_and_normalises():
    text = "# machines\r\ngazette = 1\r\n  lldap=02  \nweb=4\nweb=04\nmail=05"
    assert parse_registry(text) == {"gazette": 1, "lldap": 2, "web": 4, "mail": 5}
    number, registry, new = with_entry(text, "blog")
    assert number == 6 and registry["blog"] == 6
    assert new == "gazette=01\nlldap=02\nweb=04\nmail=05\nblog=06\n"


def test_an_empty_registry_is_not_authoritative():
    assert lookup("gazette", {}) == 1
    assert lookup("gazette", {"station": 0}) == 1
    assert lookup("station", {}) == 0
    assert lookup("gazette", {"web": 4}) is None
    assert lookup("gazette", {"gazette": 7}) == 7


def test_pins_are_checked_against_the_table_in_force():
    assert resolve("web", None, 9) == 9
    assert resolve("web", {"gazette": 1, "web": 9}, 9) == 9
    with pytest.raises(InputError, match="built-in defaults gives 01 to 'gazette'"):
        resolve("web", None, 1)
    with pytest.raises(InputError, match="gives 09 to 'blog'"):
        resolve("web", {"blog": 9}, 9)
    with pytest.raises(InputError, match="gives it 04"):
        resolve("web", {"web": 4}, 9)
    with pytest.raises(InputError, match="belongs to the station"):
        resolve("web", {"blog": 9}, 0)


def test_next_free_skips_reserved_and_used():
    assert next_free({}) == 4
    assert next_free(DEFAULT_MACHINES) == 4
    assert next_free({"a": 4, "b": 5, "c": 7}) == 6
    assert next_free({"a": 4, "b": 5, "c": 7}, reserved={6: "pinned"}) == 8


def test_next_free_none_left():
    full = {f"m{n}": n for n in range(4, 100)}
    with pytest.raises(InputError, match="no free machine number"):
        next_free(full)


def test_assign_existing_is_unchanged():
    registry = {"station": 0, "gazette": 1}
    number, updated, changed = assign("gazette", registry)
    assert (number, updated, changed) == (1, registry, False)
    assert assign("lldap", None) == (2, {}, False)


def test_assign_new_adds_to_a_copy():
    registry = {"station": 0, "gazette": 1, "web": 4}
    number, updated, changed = assign("photos", registry)
    assert (number, changed) == (5, True)
    assert updated == {"gazette": 1, "web": 4, "photos": 5}
    assert registry == {"station": 0, "gazette": 1, "web": 4}


def test_assign_into_a_registry_without_machines_writes_the_defaults():
    assert assign("photos", {}) == (4, {**{k: v for k, v in DEFAULT_MACHINES.items()
                                          if k != "station"}, "photos": 4}, True)
    assert with_entry("", "photos")[2] == "gazette=01\nlldap=02\ngateway=03\nphotos=04\n"


def test_pins_go_into_the_registry():
    assert with_entry("gazette=01\n", "web", pin=9)[::2] == (9, "gazette=01\nweb=09\n")
    assert with_entry("gazette = 1\nweb=09", "web", pin=9)[::2] == (9, "gazette = 1\nweb=09")
    with pytest.raises(InputError, match="gives 01 to 'gazette'"):
        with_entry("gazette=01\n", "web", pin=1)
    # a number pinned in the inventory for another machine is never handed out
    assert with_entry("gazette=01\n", "blog", reserved=(4, 5))[0] == 6


def test_assign_station_is_zero():
    assert assign("station", {}) == (0, {}, False)


def test_assign_refuses_bad_name():
    with pytest.raises(InputError, match="machine name 'Web' is not valid"):
        assign("Web", {})


def test_seed_keeps_a_registry_with_machines_and_checks_it():
    assert seed("") == seed("station=00\n") == "gazette=01\nlldap=02\ngateway=03\n"
    assert seed("x=05\n") == "x=05\n"
    with pytest.raises(InputError, match="00 belongs to the station"):
        seed("gazette=00\n")
