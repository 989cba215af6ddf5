"""The root of every exception aigent-trn raises of its own: ``except TrnError`` catches a
call that could not be made (unreachable RPC, wrong chain, reverted transaction, no key) and
bad settings (:class:`~aigent_trn.config.TrnConfigError`, also a ``ValueError``) and bad
arguments (:class:`TrnInputError`, a ``ValueError`` too)."""

from __future__ import annotations


class TrnError(RuntimeError):
    """A TRN call could not be made; the message says why and what to fix."""


class TrnInputError(TrnError, ValueError):
    """An argument that cannot be used (an amount, a token, a symbol); nothing was sent."""
