"""The name -> object table every ``get_*`` lookup goes through."""

from __future__ import annotations

import pytest

from zeronn._registry import Registry, unknown_name


def _table() -> Registry[int]:
    return Registry("widget", {"One": 1, "two": 2}, aliases={"uno": "ONE"})


def test_is_a_dict_of_lower_case_names():
    r = _table()
    assert isinstance(r, dict)
    assert dict(r) == {"one": 1, "two": 2}
    assert "uno" not in r  # aliases are spellings, not entries


def test_lookup_any_case_and_aliases():
    r = _table()
    assert r.lookup("ONE") == 1 and r.lookup("Uno") == 1 and r.lookup("two") == 2
    assert r.key("UNO") == "one" and r.key("three") is None and r.key(3) is None


def test_unknown_name_lists_the_known_ones_sorted():
    r = _table()
    with pytest.raises(ValueError, match=r"^unknown widget 'three'; known: one, two$"):
        r.lookup("three")
    with pytest.raises(ValueError, match=r"^unknown widget 3; known: one, two$"):
        r.lookup(3)
    assert str(unknown_name("thing", "x", ["b", "a"])) == "unknown thing 'x'; known: a, b"


def test_register():
    r = _table()
    assert r.register("Three", 3) == 3
    assert r.lookup("three") == 3
    with pytest.raises(ValueError, match="widget name must be a non-empty string"):
        r.register("", 4)
