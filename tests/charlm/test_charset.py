import pytest

from charlm import Charset, CharsetError


def test_order_is_sorted_and_stable():
    a = Charset.from_text("привет мир")
    b = Charset.from_text("мир привет")
    assert a.chars == tuple(sorted(set("привет мир")))
    assert a == b and a.sha256 == b.sha256


def test_encode_decode_roundtrip():
    cs = Charset.from_text("абв гд.")
    ids = cs.encode("гад. в")
    assert ids.dtype.name == "int32"
    assert cs.decode(ids) == "гад. в"


def test_unknown_character_is_named():
    cs = Charset.from_text("абв")
    with pytest.raises(CharsetError) as e:
        cs.encode("аб€в")
    assert e.value.char == "€" and e.value.position == 2
    assert "€" in str(e.value)
    assert cs.unknown("аxбyx") == ["x", "y"]
    assert cs.filter("аxбy") == "аб"


def test_json_roundtrip_keeps_order(tmp_path):
    cs = Charset(("я", "а", " "))  # a foreign order is kept as given, never re-sorted
    p = tmp_path / "charset.json"
    p.write_text(cs.to_json(), encoding="utf-8")
    assert Charset.load(p).chars == ("я", "а", " ")


def test_rejects_duplicates():
    with pytest.raises(ValueError):
        Charset(("а", "а"))
