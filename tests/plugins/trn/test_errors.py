"""One exception root for the plugin: everything aigent-trn defines is a TrnError, and the
built-in bases callers catch are kept."""

from __future__ import annotations

import aigent_trn
import pytest
from aigent_trn import TrnError
from aigent_trn.config import TrnConfigError, TrnSettings

from tests.fixtures.exceptions import defined_exceptions


def test_every_exception_the_plugin_defines_is_a_trn_error() -> None:
    found = defined_exceptions(aigent_trn)
    assert {TrnConfigError, TrnError} <= set(found)
    assert [e.__qualname__ for e in found if not issubclass(e, TrnError)] == []
    assert issubclass(TrnError, RuntimeError) and issubclass(TrnConfigError, ValueError)


def test_bad_settings_are_caught_by_the_root() -> None:
    with pytest.raises(TrnError, match="porcini"):
        TrnSettings.parse({"network": "moon"})
