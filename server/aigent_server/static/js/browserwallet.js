// An external wallet (MetaMask and other EIP-1193 extensions, window.ethereum): it signs the
// same sign-in message with personal_sign, and the server checks it as it checks ours.
import { signIn } from "./api.js";

export function available() {
  return typeof window.ethereum === "object" && window.ethereum !== null && typeof window.ethereum.request === "function";
}

const hex = (text) => "0x" + Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");

export async function signInWithBrowserWallet() {
  const accounts = await window.ethereum.request({ method: "eth_requestAccounts" });
  if (!accounts || !accounts.length) throw new Error("the wallet shared no account");
  const account = accounts[0];
  return signIn(account, (message) => window.ethereum.request({ method: "personal_sign", params: [hex(message), account] }));
}
