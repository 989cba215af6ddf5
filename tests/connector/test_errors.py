"""One exception root for the connector: every error it defines derives from ConnectorError,
keeps the built-in base its callers catch, and the public ones are importable from the package."""

from __future__ import annotations

import aigent_connector
import pytest
from aigent_connector import ConnectorError, InvalidPacket, decode

from tests.fixtures.exceptions import defined_exceptions


def _defined_exceptions() -> list[type]:
    # typer/pluggy entry points: they define no errors and need extras
    return defined_exceptions(aigent_connector, skip=("cli", "aigent_plugin"))


def test_every_exception_the_connector_defines_derives_from_the_root() -> None:
    found = _defined_exceptions()
    assert len(found) >= 15  # the walk did find the modules
    assert [e.__qualname__ for e in found if not issubclass(e, ConnectorError)] == []


def test_public_exceptions_are_exported_from_the_package() -> None:
    public = [e for e in _defined_exceptions() if not e.__name__.startswith("_")]
    missing = [e.__name__ for e in public if getattr(aigent_connector, e.__name__, None) is not e]
    assert missing == []
    assert set(aigent_connector.__all__) >= {e.__name__ for e in public}


@pytest.mark.parametrize(
    ("name", "builtin"),
    [
        ("InvalidPacket", ValueError),
        ("OerError", ValueError),
        ("ConfigError", ValueError),
        ("NoRate", LookupError),
        ("WebSocketError", ConnectionError),
        ("ConnectionClosed", ConnectionError),
        ("AddressUnavailable", ConnectionError),
        ("PostgresStoreError", ConnectionError),
        ("DecryptionError", ValueError),
        ("InvalidStreamPacket", ValueError),
    ],
)
def test_the_builtin_bases_callers_catch_are_kept(name: str, builtin: type) -> None:
    assert issubclass(getattr(aigent_connector, name), builtin)


def test_the_root_catches_what_the_connector_refuses() -> None:
    with pytest.raises(ConnectorError, match="packet") as caught:
        decode(b"\x0c\x01")
    assert isinstance(caught.value, InvalidPacket)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="Conector"):
        aigent_connector.Conector  # noqa: B018
