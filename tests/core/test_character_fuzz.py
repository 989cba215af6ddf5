"""Whatever a character file holds, loading it ends in a Character or a CharacterError."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigent import CharacterError, load_character
from aigent.character import Character
from aigent.character_formats import Eliza0, Eliza1, ZerePy

KEYS = sorted(
    set(Character.model_fields)
    | set(Eliza0.model_fields)
    | set(Eliza1.model_fields)
    | set(ZerePy.model_fields)
    | {"traits", "loop_delay", "user", "content", "text", "model", "all"}
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=documents | values)
def test_any_document_loads_or_fails_clearly(tmp_path: Path, document: object) -> None:
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(document))
    try:
        load_character(path)
    except CharacterError as exc:
        assert str(exc).startswith(str(path))
