"""One exception root for the plugin: everything aigent-xrpl defines is an XrplError, and the
built-in bases callers catch are kept."""

from __future__ import annotations

import aigent_xrpl
from aigent_xrpl import XrplError
from aigent_xrpl.claims import ClaimRejected
from aigent_xrpl.settlement import RedeemFailed

from tests.fixtures.exceptions import defined_exceptions


def test_every_exception_the_plugin_defines_is_an_xrpl_error() -> None:
    found = defined_exceptions(aigent_xrpl)
    assert {ClaimRejected, RedeemFailed, XrplError} <= set(found)
    assert [e.__qualname__ for e in found if not issubclass(e, XrplError)] == []
    assert issubclass(XrplError, RuntimeError) and issubclass(ClaimRejected, ValueError)
