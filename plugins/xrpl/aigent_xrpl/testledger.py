"""A small in-memory XRPL ledger that speaks rippled's JSON-RPC, for tests and demos.

No XRPL server runs on the machines this project is tested on, so this stands in for one. It is
deliberately small and honest about it.

What it checks, on every ``submit``:
- the blob decodes with xrpl-py's binary codec (``xrpl.core.binarycodec.decode``);
- the signature: ``TxnSignature`` over ``encode_for_signing`` with ``SigningPubKey``, verified with
  ``xrpl.core.keypairs.is_valid_message`` and required to be fully canonical as rippled requires
  (:mod:`aigent_xrpl.signatures`), and that the key derives the ``Account`` (master keys only: no
  regular keys, no multi-signing);
- ``Sequence`` equals the account's next sequence (``tefPAST_SEQ`` / ``terPRE_SEQ`` otherwise),
  ``Fee`` is at least the base fee of 10 drops (``telINSUF_FEE_P``), ``LastLedgerSequence`` has not
  passed (``tefMAX_LEDGER``);
- XRP balances against the reserve (1 XRP base + 0.2 XRP per owned object);
- Payment: XRP (creating the destination when it gets at least the base reserve) and issued
  currencies between the issuer and holders, or holder to holder through the issuer, only over
  trust lines that exist (``tecPATH_DRY``) and within their limits; TrustSet creates/changes one;
- AccountSet: only ``asfDefaultRipple`` (set and cleared, shown as ``lsfDefaultRipple`` in
  ``account_info``'s ``Flags``); the flag is kept, not enforced (no rippling is modelled);
- PaymentChannelCreate/Fund/Claim: channel IDs computed as rippled does; only the source funds;
  claims with a signature are verified (fully canonical, as rippled) against the channel's public
  key over ``encode_for_signing_claim``, must raise the balance, and stay within the signed amount
  and the channel amount; ``tfClose`` closes at once when the destination asks or the channel is
  drained, and otherwise after ``SettleDelay``. ``CancelAfter`` as rippled has it: immutable, set
  only at create (``tecEXPIRED`` if already past, as with ``fixPayChanCancelAfter``), and a
  channel past its ``CancelAfter`` or ``Expiration`` is closed by the next Claim or Fund that
  touches it, from anyone, before any other check: the claim pays nothing, the rest goes back to
  the source, the result is ``tesSUCCESS`` and the meta holds the ``DeletedNode``. Time is the
  ledger's ``clock`` (a test may move it); rippled uses the parent ledger's close time.

What it does not do: consensus, ledger history (every accepted transaction is at once in a new
validated ledger), paths, partial payments, transfer fees, quality, freezes, rippling flags,
DEX offer crossing (``book_offers`` returns offers seeded with :meth:`TestLedger.add_offer`), AMM
transactions (``amm_info`` returns pools seeded with :meth:`TestLedger.add_amm_pool`), escrow,
tickets, NetworkID, the fee queue, destination tags, deposit authorisation, and every transaction
type not named above (``temUNKNOWN``).

Use it as ``with TestLedger() as ledger: ledger.url`` (a thread serving HTTP on a free port) and
fund accounts with :meth:`TestLedger.fund`; or run ``python -m aigent_xrpl.testledger --port N``
(it prints its URL) and fund over JSON-RPC with the non-rippled method ``testledger_fund``
(``{"account": address, "drops": n}``).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from xrpl.core.addresscodec import decode_classic_address
from xrpl.core.binarycodec import decode, encode_for_signing, encode_for_signing_claim
from xrpl.core.keypairs import derive_classic_address, is_valid_message

from aigent_xrpl.errors import XrplError
from aigent_xrpl.signatures import is_canonical

BASE_FEE = 10
RESERVE_BASE = 1_000_000
RESERVE_INC = 200_000
RIPPLE_EPOCH = 946684800
ASF_DEFAULT_RIPPLE = 8
LSF_DEFAULT_RIPPLE = 0x00800000
TF_CLOSE = 0x00020000
TF_RENEW = 0x00010000


def sha512half(data: bytes) -> str:
    return hashlib.sha512(data).digest()[:32].hex().upper()


def channel_id(source: str, destination: str, sequence: int) -> str:
    """The ledger index of a PayChannel, as rippled computes it."""
    return sha512half(
        b"\x00\x78"
        + decode_classic_address(source)
        + decode_classic_address(destination)
        + sequence.to_bytes(4, "big")
    )


class _Fail(XrplError):
    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code


class TestLedger:
    """In-memory ledger state plus a JSON-RPC server over it (see the module docstring)."""

    __test__ = False  # not a pytest test class

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.accounts: dict[str, dict[str, int]] = {}
        self.lines: dict[tuple[str, str, str], dict[str, Decimal]] = {}
        """(holder, issuer, currency) -> {"balance", "limit"}: what holder holds of issuer's IOU."""
        self.channels: dict[str, dict[str, Any]] = {}
        self.txs: dict[str, dict[str, Any]] = {}
        self.account_txs: dict[str, list[str]] = {}
        self.amm_pools: list[dict[str, Any]] = []
        self.offers: list[dict[str, Any]] = []
        self.ledger_index = 1
        self.requests: Counter[str] = Counter()
        """JSON-RPC calls served, by method (tests use it to see what a cache saved)."""
        self.clock = time.time
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> TestLedger:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> TestLedger:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for tests -------------------------------------------------------------------
    def fund(self, address: str, drops: int = 100_000_000) -> None:
        """Give ``address`` some XRP (creating the account), as a faucet would."""
        with self._lock:
            self._account(address, create=True)["balance"] += drops

    def balance(self, address: str) -> int:
        with self._lock:
            return self.accounts[address]["balance"] if address in self.accounts else 0

    def line_balance(self, holder: str, issuer: str, currency: str) -> Decimal:
        with self._lock:
            line = self.lines.get((holder, issuer, currency))
            return line["balance"] if line else Decimal(0)

    def set_trust_line(self, holder: str, issuer: str, currency: str, limit: str) -> None:
        with self._lock:
            self._set_line(holder, issuer, currency, Decimal(limit))

    def add_amm_pool(self, amount: Any, amount2: Any, trading_fee: int = 500) -> None:
        """Seed a pool returned by ``amm_info`` (amounts in rippled's JSON shape)."""
        self.amm_pools.append({"amount": amount, "amount2": amount2, "trading_fee": trading_fee})

    def add_offer(self, account: str, taker_gets: Any, taker_pays: Any) -> None:
        """Seed an offer returned by ``book_offers``."""
        self.offers.append({"Account": account, "TakerGets": taker_gets, "TakerPays": taker_pays})

    # -- state -------------------------------------------------------------------------------
    def _account(self, address: str, create: bool = False) -> dict[str, int]:
        if address not in self.accounts:
            if not create:
                raise _Fail("actNotFound", f"account {address} not found")
            self.accounts[address] = {
                "balance": 0,
                "sequence": self.ledger_index,
                "owner_count": 0,
            }
        return self.accounts[address]

    def _reserve(self, address: str) -> int:
        return RESERVE_BASE + RESERVE_INC * self.accounts[address]["owner_count"]

    def _spendable(self, address: str) -> int:
        return self.accounts[address]["balance"] - self._reserve(address)

    def _set_line(self, holder: str, issuer: str, currency: str, limit: Decimal) -> None:
        key = (holder, issuer, currency)
        if key not in self.lines:
            self._account(issuer)
            self.lines[key] = {"balance": Decimal(0), "limit": limit}
            self.accounts[holder]["owner_count"] += 1
        else:
            self.lines[key]["limit"] = limit

    # -- transactions ------------------------------------------------------------------------
    def submit(self, blob: str) -> dict[str, Any]:
        with self._lock:
            try:
                tx = decode(blob)
            except Exception as exc:
                return {"error": "invalidTransaction", "error_exception": str(exc)}
            tx_hash = sha512half(b"TXN\x00" + bytes.fromhex(blob))
            base = {"tx_blob": blob, "tx_json": {**tx, "hash": tx_hash}}
            if tx_hash in self.txs:
                return {**base, "engine_result": "tefALREADY", "engine_result_message": "done"}
            try:
                self._check_envelope(tx)
            except _Fail as fail:
                return {**base, "engine_result": fail.code, "engine_result_message": str(fail)}
            account = self.accounts[tx["Account"]]
            account["balance"] -= int(tx["Fee"])
            account["sequence"] += 1
            meta: dict[str, Any] = {"AffectedNodes": []}
            try:
                getattr(self, "_apply_" + tx["TransactionType"])(tx, meta)
                result, message = "tesSUCCESS", "The transaction was applied."
            except _Fail as fail:
                result, message = fail.code, str(fail)
            self.ledger_index += 1
            meta["TransactionResult"] = result
            stored = {**tx, "hash": tx_hash, "date": self._now(), "meta": meta,
                      "ledger_index": self.ledger_index}  # fmt: skip
            self.txs[tx_hash] = stored
            for party in {tx["Account"], tx.get("Destination")} - {None}:
                self.account_txs.setdefault(party, []).append(tx_hash)
            return {**base, "engine_result": result, "engine_result_message": message}

    def _check_envelope(self, tx: dict[str, Any]) -> None:
        kind = tx.get("TransactionType", "")
        if not hasattr(self, "_apply_" + kind):
            raise _Fail("temUNKNOWN", f"the test ledger does not support {kind}")
        signature = tx.pop("TxnSignature", None)
        public_key = tx.get("SigningPubKey", "")
        if not signature or not public_key:
            raise _Fail("temBAD_SIGNATURE", "the transaction is not signed")
        message = bytes.fromhex(encode_for_signing(tx))
        tx["TxnSignature"] = signature
        if not is_valid_message(message, bytes.fromhex(signature), public_key):
            raise _Fail("temBAD_SIGNATURE", "the signature does not verify")
        if not is_canonical(bytes.fromhex(signature), public_key):
            raise _Fail("temBAD_SIGNATURE", "the signature is not fully canonical")
        if derive_classic_address(public_key) != tx["Account"]:
            raise _Fail("tefBAD_AUTH", "the signing key is not the account's master key")
        if tx["Account"] not in self.accounts:
            raise _Fail("terNO_ACCOUNT", "the sending account does not exist")
        account = self.accounts[tx["Account"]]
        if tx["Sequence"] < account["sequence"]:
            raise _Fail("tefPAST_SEQ", "this sequence number has been used")
        if tx["Sequence"] > account["sequence"]:
            raise _Fail("terPRE_SEQ", "missing an earlier sequence number")
        if int(tx["Fee"]) < BASE_FEE:
            raise _Fail("telINSUF_FEE_P", f"the fee is below {BASE_FEE} drops")
        if int(tx["Fee"]) > account["balance"]:
            raise _Fail("terINSUF_FEE_B", "the account cannot pay the fee")
        if tx.get("LastLedgerSequence", 1 << 32) <= self.ledger_index:
            raise _Fail("tefMAX_LEDGER", "LastLedgerSequence has passed")

    def _apply_Payment(self, tx: dict[str, Any], meta: dict[str, Any]) -> None:
        src, dst = tx["Account"], tx["Destination"]
        amount: Any = tx.get("Amount", tx.get("DeliverMax"))
        if src == dst:
            raise _Fail("temREDUNDANT", "a payment to oneself")
        if isinstance(amount, str):
            drops = int(amount)
            if drops <= 0:
                raise _Fail("temBAD_AMOUNT", "the amount must be positive")
            if self._spendable(src) < drops:
                raise _Fail("tecUNFUNDED_PAYMENT", "not enough XRP above the reserve")
            if dst not in self.accounts and drops < RESERVE_BASE:
                raise _Fail("tecNO_DST_INSUF_XRP", "too little XRP to create the destination")
            self._account(dst, create=True)["balance"] += drops
            self.accounts[src]["balance"] -= drops
            meta["delivered_amount"] = amount
            return
        currency, issuer, value = amount["currency"], amount["issuer"], Decimal(amount["value"])
        if value <= 0:
            raise _Fail("temBAD_AMOUNT", "the amount must be positive")
        if dst not in self.accounts:
            raise _Fail("tecNO_DST", "the destination does not exist")
        if src != issuer:
            line = self.lines.get((src, issuer, currency))
            if line is None or line["balance"] < value:
                raise _Fail("tecPATH_PARTIAL", f"the sender holds too little {currency}")
        if dst != issuer:
            line = self.lines.get((dst, issuer, currency))
            if line is None:
                raise _Fail("tecPATH_DRY", f"the destination has no {currency} trust line")
            if line["balance"] + value > line["limit"]:
                raise _Fail("tecPATH_PARTIAL", "over the destination's trust line limit")
            line["balance"] += value
        if src != issuer:
            self.lines[(src, issuer, currency)]["balance"] -= value
        meta["delivered_amount"] = amount

    def _apply_TrustSet(self, tx: dict[str, Any], meta: dict[str, Any]) -> None:
        limit = tx["LimitAmount"]
        if limit["issuer"] not in self.accounts:
            raise _Fail("tecNO_ISSUER", "the issuer does not exist")
        if self._spendable(tx["Account"]) < RESERVE_INC:
            raise _Fail("tecINSUF_RESERVE_LINE", "not enough XRP for the owner reserve")
        self._set_line(tx["Account"], limit["issuer"], limit["currency"], Decimal(limit["value"]))

    def _apply_AccountSet(self, tx: dict[str, Any], meta: dict[str, Any]) -> None:
        account = self.accounts[tx["Account"]]
        for key, on in (("SetFlag", True), ("ClearFlag", False)):
            if key not in tx:
                continue
            if tx[key] != ASF_DEFAULT_RIPPLE:
                raise _Fail("temINVALID_FLAG", "the test ledger supports only asfDefaultRipple")
            flags = account.get("flags", 0)
            account["flags"] = flags | LSF_DEFAULT_RIPPLE if on else flags & ~LSF_DEFAULT_RIPPLE

    def _apply_PaymentChannelCreate(self, tx: dict[str, Any], meta: dict[str, Any]) -> None:
        src, dst, drops = tx["Account"], tx["Destination"], int(tx["Amount"])
        if src == dst or drops <= 0:
            raise _Fail("temDST_IS_SRC" if src == dst else "temBAD_AMOUNT", "bad channel")
        if dst not in self.accounts:
            raise _Fail("tecNO_DST", "the destination does not exist")
        if self._spendable(src) - RESERVE_INC < drops:
            raise _Fail("tecUNFUNDED", "not enough XRP above the reserve")
        cancel_after = tx.get("CancelAfter")
        if cancel_after is not None and self._now() > cancel_after:
            raise _Fail("tecEXPIRED", "CancelAfter has passed")
        index = channel_id(src, dst, tx["Sequence"])
        self.channels[index] = {
            "account": src,
            "destination_account": dst,
            "amount": drops,
            "balance": 0,
            "public_key": tx["PublicKey"],
            "settle_delay": tx["SettleDelay"],
            "expiration": None,
            "cancel_after": cancel_after,
        }
        self.accounts[src]["balance"] -= drops
        self.accounts[src]["owner_count"] += 1
        meta["AffectedNodes"].append(
            {"CreatedNode": {"LedgerEntryType": "PayChannel", "LedgerIndex": index}}
        )

    def _apply_PaymentChannelFund(self, tx: dict[str, Any], meta: dict[str, Any]) -> None:
        chan = self._channel(tx["Channel"])
        if self._expired(chan):
            self._close_channel(tx["Channel"], meta)
            return
        if chan["account"] != tx["Account"]:
            raise _Fail("tecNO_PERMISSION", "only the source may fund a channel")
        drops = int(tx["Amount"])
        if self._spendable(tx["Account"]) < drops:
            raise _Fail("tecUNFUNDED", "not enough XRP above the reserve")
        chan["amount"] += drops
        self.accounts[tx["Account"]]["balance"] -= drops

    def _apply_PaymentChannelClaim(self, tx: dict[str, Any], meta: dict[str, Any]) -> None:
        index = tx["Channel"]
        chan = self._channel(index)
        who = tx["Account"]
        if self._expired(chan):  # before any other check, as rippled: anyone may close it
            self._close_channel(index, meta)
            return
        if who not in (chan["account"], chan["destination_account"]):
            raise _Fail("tecNO_PERMISSION", "only the source or destination may claim")
        if "Balance" in tx:
            balance = int(tx["Balance"])
            if who == chan["destination_account"]:
                if "Signature" not in tx:
                    raise _Fail("temBAD_SIGNATURE", "the destination's claim needs a signature")
                authorised = int(tx["Amount"])
                if tx.get("PublicKey", "").upper() != chan["public_key"].upper():
                    raise _Fail("temBAD_SIGNER", "the public key is not the channel's")
                message = bytes.fromhex(
                    encode_for_signing_claim({"channel": index, "amount": str(authorised)})
                )
                signature = bytes.fromhex(tx["Signature"])
                if not is_valid_message(message, signature, chan["public_key"]):
                    raise _Fail("temBAD_SIGNATURE", "the claim signature does not verify")
                if not is_canonical(signature, chan["public_key"]):
                    raise _Fail("temBAD_SIGNATURE", "the claim signature is not fully canonical")
                if balance > authorised:
                    raise _Fail("temBAD_AMOUNT", "Balance exceeds the signed Amount")
            if balance > chan["amount"]:
                raise _Fail("tecUNFUNDED_PAYMENT", "Balance exceeds the channel amount")
            if balance <= chan["balance"]:
                raise _Fail("tecUNFUNDED_PAYMENT", "Balance does not exceed what was claimed")
            self.accounts[chan["destination_account"]]["balance"] += balance - chan["balance"]
            chan["balance"] = balance
        flags = int(tx.get("Flags", 0))
        if flags & TF_CLOSE:
            if who == chan["destination_account"] or chan["balance"] == chan["amount"]:
                self._close_channel(index, meta)
            else:
                chan["expiration"] = self._now() + chan["settle_delay"]
        elif flags & TF_RENEW and who == chan["account"]:
            chan["expiration"] = None

    def _channel(self, index: str) -> dict[str, Any]:
        if index not in self.channels:
            raise _Fail("tecNO_ENTRY", f"no channel {index}")
        return self.channels[index]

    def _expired(self, chan: dict[str, Any]) -> bool:
        now = self._now()
        return any(
            at is not None and now >= at for at in (chan["cancel_after"], chan["expiration"])
        )

    def _close_channel(self, index: str, meta: dict[str, Any]) -> None:
        chan = self.channels.pop(index)
        self.accounts[chan["account"]]["balance"] += chan["amount"] - chan["balance"]
        self.accounts[chan["account"]]["owner_count"] -= 1
        # what rippled's metadata says of a deleted channel: how much it had paid when it closed
        final = {"Amount": str(chan["amount"]), "Balance": str(chan["balance"])}
        meta["AffectedNodes"].append(
            {
                "DeletedNode": {
                    "LedgerEntryType": "PayChannel",
                    "LedgerIndex": index,
                    "FinalFields": {
                        "Account": chan["account"],
                        "Destination": chan["destination_account"],
                        **final,
                    },
                }
            }
        )

    def _now(self) -> int:
        return int(self.clock()) - RIPPLE_EPOCH

    # -- reads -------------------------------------------------------------------------------
    def handle(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.requests[method] += 1
            try:
                fn = getattr(self, "_rpc_" + method, None)
                if fn is None:
                    return {"error": "unknownCmd", "error_message": f"{method} is not supported"}
                return dict(fn(params))
            except _Fail as fail:
                return {"error": fail.code, "error_message": str(fail)}

    def _rpc_testledger_fund(self, p: dict[str, Any]) -> dict[str, Any]:
        """Not a rippled method: the faucet, for demos whose agents run in other processes."""
        self.fund(p["account"], int(p.get("drops", 100_000_000)))
        return {"account": p["account"], "balance": str(self.accounts[p["account"]]["balance"])}

    def _rpc_submit(self, p: dict[str, Any]) -> dict[str, Any]:
        return self.submit(p["tx_blob"])

    def _rpc_server_info(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "info": {
                "build_version": "2.3.0-testledger",
                "network_id": 1,  # the XRPL testnet's, which x402 payers check
                "server_state": "full",
                "complete_ledgers": f"1-{self.ledger_index}",
                "validated_ledger": {
                    "seq": self.ledger_index,
                    "base_fee_xrp": BASE_FEE / 1e6,
                    "reserve_base_xrp": RESERVE_BASE / 1e6,
                    "reserve_inc_xrp": RESERVE_INC / 1e6,
                },
            }
        }

    def _rpc_fee(self, p: dict[str, Any]) -> dict[str, Any]:
        drops = {k: str(BASE_FEE) for k in ("base_fee", "median_fee", "minimum_fee")}
        return {
            "drops": {**drops, "open_ledger_fee": str(BASE_FEE)},
            "current_ledger_size": "0",
            "current_queue_size": "0",
            "expected_ledger_size": "1000",
            "max_queue_size": "2000",
            "ledger_current_index": self.ledger_index + 1,
            "levels": {k: "256" for k in ("median_level", "minimum_level", "open_ledger_level")}
            | {"reference_level": "256"},
        }

    def _rpc_ledger(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("ledger_index") == "current":
            return {
                "ledger_current_index": self.ledger_index + 1,
                "ledger": {"closed": False, "ledger_index": str(self.ledger_index + 1)},
                "validated": False,
            }
        return {
            "ledger_index": self.ledger_index,
            "ledger_hash": sha512half(str(self.ledger_index).encode()),
            "ledger": {"closed": True, "ledger_index": str(self.ledger_index)},
            "validated": True,
        }

    def _rpc_ledger_current(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"ledger_current_index": self.ledger_index + 1}

    def _rpc_account_info(self, p: dict[str, Any]) -> dict[str, Any]:
        acct = self._account(p["account"])
        return {
            "account_data": {
                "Account": p["account"],
                "Balance": str(acct["balance"]),
                "Sequence": acct["sequence"],
                "OwnerCount": acct["owner_count"],
                "LedgerEntryType": "AccountRoot",
                "Flags": acct.get("flags", 0),
            },
            "ledger_current_index": self.ledger_index + 1,
            "validated": p.get("ledger_index") == "validated",
        }

    def _rpc_account_lines(self, p: dict[str, Any]) -> dict[str, Any]:
        me = p["account"]
        self._account(me)
        lines = []
        for (holder, issuer, currency), line in self.lines.items():
            if me == holder:
                lines.append(
                    {
                        "account": issuer,
                        "currency": currency,
                        "balance": str(line["balance"]),
                        "limit": str(line["limit"]),
                        "limit_peer": "0",
                    }
                )
            elif me == issuer:
                lines.append(
                    {
                        "account": holder,
                        "currency": currency,
                        "balance": str(-line["balance"]),
                        "limit": "0",
                        "limit_peer": str(line["limit"]),
                    }
                )
        return {"account": me, "lines": lines, "validated": True}

    def _rpc_account_channels(self, p: dict[str, Any]) -> dict[str, Any]:
        me = p["account"]
        self._account(me)
        channels = [
            {
                "channel_id": index,
                "account": chan["account"],
                "destination_account": chan["destination_account"],
                "amount": str(chan["amount"]),
                "balance": str(chan["balance"]),
                "public_key_hex": chan["public_key"],
                "settle_delay": chan["settle_delay"],
                **({"expiration": chan["expiration"]} if chan["expiration"] else {}),
                **({"cancel_after": chan["cancel_after"]} if chan["cancel_after"] else {}),
            }
            for index, chan in self.channels.items()
            if chan["account"] == me
            and p.get("destination_account") in (None, chan["destination_account"])
        ]
        return {"account": me, "channels": channels, "validated": True}

    def _rpc_account_tx(self, p: dict[str, Any]) -> dict[str, Any]:
        me = p["account"]
        self._account(me)
        hashes = list(reversed(self.account_txs.get(me, [])))[: int(p.get("limit", 200))]
        return {
            "account": me,
            "transactions": [self._tx_entry(self.txs[h]) for h in hashes],
            "validated": True,
        }

    def _tx_entry(self, stored: dict[str, Any]) -> dict[str, Any]:
        tx = {k: v for k, v in stored.items() if k not in ("meta", "ledger_index")}
        return {
            "tx_json": tx,
            "tx": tx,
            "hash": stored["hash"],
            "meta": stored["meta"],
            "ledger_index": stored["ledger_index"],
            "close_time_iso": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(stored["date"] + RIPPLE_EPOCH)
            ),
            "validated": True,
        }

    def _rpc_tx(self, p: dict[str, Any]) -> dict[str, Any]:
        stored = self.txs.get(str(p.get("transaction", "")).upper())
        if stored is None:
            return {"error": "txnNotFound", "error_message": "Transaction not found."}
        entry = self._tx_entry(stored)
        return {**entry["tx"], **entry}

    def _rpc_ledger_entry(self, p: dict[str, Any]) -> dict[str, Any]:
        index = str(p.get("payment_channel", "")).upper()
        chan = self.channels.get(index)
        if chan is None:
            return {"error": "entryNotFound", "error_message": f"no ledger entry {index}"}
        node = {
            "LedgerEntryType": "PayChannel",
            "Account": chan["account"],
            "Destination": chan["destination_account"],
            "Amount": str(chan["amount"]),
            "Balance": str(chan["balance"]),
            "PublicKey": chan["public_key"],
            "SettleDelay": chan["settle_delay"],
            **({"Expiration": chan["expiration"]} if chan["expiration"] else {}),
            **({"CancelAfter": chan["cancel_after"]} if chan["cancel_after"] else {}),
        }
        return {"index": index, "node": node, "validated": True}

    def _rpc_amm_info(self, p: dict[str, Any]) -> dict[str, Any]:
        want = [_asset_key(p.get("asset")), _asset_key(p.get("asset2"))]
        for pool in self.amm_pools:
            have = [_asset_key(pool["amount"]), _asset_key(pool["amount2"])]
            if sorted(want) == sorted(have):
                return {"amm": pool, "validated": True}
        return {"error": "actNotFound", "error_message": "no AMM pool for these assets"}

    def _rpc_book_offers(self, p: dict[str, Any]) -> dict[str, Any]:
        gets, pays = _asset_key(p.get("taker_gets")), _asset_key(p.get("taker_pays"))
        offers = [
            o
            for o in self.offers
            if _asset_key(o["TakerGets"]) == gets and _asset_key(o["TakerPays"]) == pays
        ]
        return {"offers": offers[: int(p.get("limit", 20))], "validated": True}

    # -- HTTP --------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        ledger = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                params = (body.get("params") or [{}])[0]
                result = ledger.handle(body.get("method", ""), params)
                result["status"] = "error" if "error" in result else "success"
                data = json.dumps({"result": result, "id": body.get("id")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def main() -> None:
    """``python -m aigent_xrpl.testledger --port 5005``: serve until interrupted."""
    import argparse

    parser = argparse.ArgumentParser(description="A local XRPL test ledger (JSON-RPC).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    ledger = TestLedger(args.host, args.port)
    print(ledger.url, flush=True)
    try:
        ledger._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        ledger._server.server_close()


def _asset_key(asset: Any) -> str:
    if asset is None or isinstance(asset, str) or asset.get("currency") == "XRP":
        return "XRP"
    return f"{asset['currency']}/{asset.get('issuer', '')}"


if __name__ == "__main__":
    main()
