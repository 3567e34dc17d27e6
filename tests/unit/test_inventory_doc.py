"""docs/inventory.md lists every key the loader accepts, and no key it refuses."""
import re
from pathlib import Path

from tinsnip_tasks.core import inventory

DOC = Path(__file__).resolve().parents[2] / "docs" / "inventory.md"


def accepted() -> set[str]:
    """Every key path the loader's own schema accepts, with placeholders for chosen names."""
    service = "machines.NAME.services.SERVICE"
    levels = {"": inventory.TOP_KEYS, "sheets.NAME": inventory.SHEET_KEYS,
              "nas.NAME": inventory.NAS_KEYS, "machines.NAME": inventory.MACHINE_KEYS,
              service: inventory.SERVICE_KEYS, f"{service}.forward.PORT": inventory.FORWARD_KEYS,
              "sheets.NAME.docker": inventory.DOCKER_KEYS,
              "machines.NAME.docker": inventory.DOCKER_KEYS}
    return {f"{prefix}.{key}" if prefix else key for prefix, keys in levels.items() for key in keys}


def documented() -> set[str]:
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `")]
    return {re.match(r"\| `([^`]+)`", row).group(1) for row in rows}


def test_every_accepted_key_is_in_the_table():
    assert accepted() - documented() == set()


def test_the_table_lists_only_keys_the_loader_accepts():
    assert documented() - accepted() == set()


def test_a_retired_key_is_said_to_be_so():
    for key in inventory.RETIRED_KEYS:
        assert f"`{key}:`" in DOC.read_text()
