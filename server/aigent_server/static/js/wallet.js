// The built-in wallet: a secp256k1 key made and kept in this browser (localStorage), never
// sent anywhere. It signs the server's sign-in message the way Ethereum wallets do
// (personal_sign), so the server checks it with the same code it would use for MetaMask.
import * as secp from "/static/vendor/noble-secp256k1/index.js";
import { keccak_256 } from "/static/vendor/noble-hashes/sha3.js";
import { hmac } from "/static/vendor/noble-hashes/hmac.js";
import { sha256 } from "/static/vendor/noble-hashes/sha2.js";

// RFC 6979 signing needs a synchronous HMAC-SHA256 (WebCrypto's is async only).
secp.etc.hmacSha256Sync = (key, ...messages) => hmac(sha256, key, secp.etc.concatBytes(...messages));

const STORAGE = "aigent.wallet.key";
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const utf8 = (text) => new TextEncoder().encode(text);

function checksummed(lower) {
  // EIP-55: the case of each letter carries a checksum, so a mistyped address is caught.
  const hash = hex(keccak_256(utf8(lower)));
  return "0x" + [...lower].map((c, i) => (parseInt(hash[i], 16) >= 8 ? c.toUpperCase() : c)).join("");
}

export function address(key) {
  const pub = secp.getPublicKey(key, false).slice(1);
  return checksummed(hex(keccak_256(pub).slice(-20)));
}

export function load() {
  const stored = localStorage.getItem(STORAGE);
  return stored ? secp.etc.hexToBytes(stored) : null;
}

export function create() {
  const key = secp.utils.randomPrivateKey();
  localStorage.setItem(STORAGE, hex(key));
  return key;
}

export function forget() {
  localStorage.removeItem(STORAGE);
}

export function signMessage(key, message) {
  const body = utf8(message);
  const prefix = utf8(`\x19Ethereum Signed Message:\n${body.length}`);
  const digest = keccak_256(secp.etc.concatBytes(prefix, body));
  const sig = secp.sign(digest, key);
  return "0x" + hex(sig.toCompactRawBytes()) + (27 + sig.recovery).toString(16);
}
