"""SMEP numbers: formulas, the shell's sheet hash, port range refusals."""

import subprocess

import pytest

from tinsnip_tasks.core.smep import (
    ENVIRONMENTS,
    Smep,
    env_number,
    machine_uid,
    make_smep,
    port_list,
    sheet_number,
    validate_name,
)
from tinsnip_tasks.errors import InputError, SmepError

SHELL_SHEET_NUMBER = (
    'echo "$1" | md5sum | cut -c1-1 | { read hex; printf "%d\\n" "0x$hex" |'
    " awk '{n=($1 % 9) + 1; print n}'; }"
)


def shell_sheet_number(sheet):
    out = subprocess.run(
        ["bash", "-c", SHELL_SHEET_NUMBER, "sheet-number", sheet],
        check=True, capture_output=True, text=True,
    )
    return int(out.stdout)


def test_environments_in_smep_order():
    assert list(ENVIRONMENTS.items()) == [
        ("prod", 0), ("test", 1), ("dev", 2), ("staging", 3), ("demo", 4),
        ("qa", 5), ("uat", 6), ("preview", 7), ("canary", 8), ("local", 9),
    ]


@pytest.mark.parametrize(
    "sheet, expected",
    [("dynamicalsystem", 1), ("acmecorp", 3), ("topsheet", 4), ("mycompany", 7)],
    ids=["dynamicalsystem", "acmecorp", "topsheet", "mycompany"],
)
def test_sheet_number_known_values(sheet, expected):
    assert sheet_number(sheet) == expected


SHELL_NAMES = [
    "dynamicalsystem", "acmecorp", "topsheet", "mycompany", "home", "lab-2", "z", "a" * 32,
]


@pytest.mark.parametrize("sheet", SHELL_NAMES, ids=[n[:16] for n in SHELL_NAMES])
def test_sheet_number_matches_shell_pipeline(sheet):
    assert sheet_number(sheet) == shell_sheet_number(sheet)


def test_pinned_sheet_number_wins():
    assert sheet_number("mycompany", 2) == 2


@pytest.mark.parametrize("pinned", [0, 10, -1, "2", True, 2.0], ids=str)
def test_pinned_sheet_number_out_of_range(pinned):
    with pytest.raises(SmepError, match="1..9"):
        sheet_number("mycompany", pinned)


@pytest.mark.parametrize("env, expected", list(ENVIRONMENTS.items()), ids=list(ENVIRONMENTS))
def test_gazette_in_every_environment(env, expected):
    smep = make_smep("dynamicalsystem", "gazette", env, 1)
    assert smep.uid == 10100 + expected * 10
    assert smep.ports == list(range(smep.uid, smep.uid + 10))
    assert smep.user == f"gazette-{env}"
    assert smep.mount_point == f"/mnt/gazette-{env}"
    assert smep.label == f"dynamicalsystem/gazette/{env}"


@pytest.mark.parametrize("env, uid", [("prod", 10000), ("test", 10010)], ids=["prod", "test"])
def test_station(env, uid):
    assert make_smep("dynamicalsystem", "station", env, 0).uid == uid


def test_lldap_prod_ports():
    smep = make_smep("dynamicalsystem", "lldap", "prod", 2)
    assert smep == Smep("dynamicalsystem", 1, "lldap", 2, "prod", 0)
    assert smep.uid == 10200
    assert smep.ports == list(range(10200, 10210))


def test_port_list_and_uid_formula():
    assert machine_uid(3, 42, 7) == 34270
    assert port_list(34270) == list(range(34270, 34280))


def test_pinned_sheet_moves_numbers():
    smep = make_smep("mycompany", "gazette", "test", 1, pinned_sheet_no=2)
    assert (smep.sheet_no, smep.uid) == (2, 20110)


def test_mycompany_refused_with_advice():
    with pytest.raises(SmepError) as err:
        make_smep("mycompany", "gazette", "prod", 1)
    message = str(err.value)
    for part in ("'mycompany'", "'gazette'", "'prod'", "70100", "number: N", "from 1 to 6"):
        assert part in message


@pytest.mark.parametrize(
    "machine_no, env, ok",
    [(55, "prod", True), (55, "dev", True), (55, "staging", False), (56, "prod", False)],
    ids=["m55-prod-ok", "m55-dev-ok", "m55-staging-refused", "m56-prod-refused"],
)
def test_sheet_six_edge(machine_no, env, ok):
    if ok:
        smep = make_smep("acmecorp", "edge", env, machine_no, pinned_sheet_no=6)
        assert max(smep.ports) <= 65535
    else:
        with pytest.raises(SmepError, match=r"outside 1024..65535.*from 1 to 5"):
            make_smep("acmecorp", "edge", env, machine_no, pinned_sheet_no=6)


@pytest.mark.parametrize(
    "value",
    ["Foo", "1abc", "", "a" * 33, "gaz_ette", "gaz ette", "-x", "x;rm", None, 7],
    ids=["upper", "digit-first", "empty", "too-long", "underscore", "space", "dash-first",
         "semicolon", "none", "int"],
)
def test_bad_names(value):
    with pytest.raises(InputError, match="is not valid: use 1-32 lowercase"):
        validate_name("machine", value)
    with pytest.raises(InputError):
        make_smep("dynamicalsystem", value, "prod", 1)


def test_bad_name_message():
    with pytest.raises(InputError) as err:
        validate_name("machine", "Foo")
    assert str(err.value) == (
        "machine name 'Foo' is not valid: use 1-32 lowercase letters, digits or '-',"
        " starting with a letter"
    )


def test_good_names():
    assert validate_name("sheet", "a") == "a"
    assert validate_name("sheet", "lab-2" + "x" * 27) == "lab-2" + "x" * 27


@pytest.mark.parametrize(
    "env", ["prd", "PROD", "", None, 0], ids=["prd", "upper", "empty", "none", "int"]
)
def test_unknown_environment_lists_all(env):
    with pytest.raises(SmepError) as err:
        env_number(env)
    assert "prod, test, dev, staging, demo, qa, uat, preview, canary, local" in str(err.value)


@pytest.mark.parametrize(
    "args",
    [(0, 1, 0), (10, 1, 0), (1, 100, 0), (1, -1, 0), (1, 1, 10), (1, "1", 0)],
    ids=["sheet-0", "sheet-10", "machine-100", "machine-neg", "env-10", "machine-str"],
)
def test_machine_uid_ranges(args):
    with pytest.raises(SmepError, match="out of range"):
        machine_uid(*args)


def test_make_smep_machine_number_range():
    with pytest.raises(SmepError, match="machine number 100"):
        make_smep("dynamicalsystem", "gazette", "prod", 100)


def test_user_name_too_long():
    with pytest.raises(InputError, match="shorten the machine name"):
        make_smep("dynamicalsystem", "m" * 30, "staging", 4)
