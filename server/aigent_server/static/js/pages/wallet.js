// The wallet: the browser-kept key, its address, sign in and out (or a browser wallet such as
// MetaMask), and, once signed in, API tokens for scripts.
import { session, signIn, signOut } from "../api.js";
import { available, signInWithBrowserWallet } from "../browserwallet.js";
import { connect, disconnect } from "../events.js";
import { h, header, toast } from "../ui.js";
import * as wallet from "../wallet.js";
import { route } from "../main.js";
import { apiKeysSection } from "./apikeys.js";

export async function walletPage(main) {
  const key = wallet.load();
  const card = h("div", { class: "card wallet-card" });
  main.append(header("Wallet", "Your key lives in this browser only; the server sees signatures, never the key."), card);
  const signedIn = Boolean(session.owner);

  async function enter(button, how) {
    button.disabled = true;
    try {
      await how();
      connect();
      toast("Signed in", "ok");
      location.hash = "#/agents";
    } catch (err) {
      toast(err.message || String(err), "error");
      button.disabled = false;
    }
  }
  const external = available() && !signedIn
    ? [h("div", { class: "wallet-or" }, "or"),
       h("button", { id: "browser-wallet", class: "browser-wallet", onclick: (e) => enter(e.currentTarget, signInWithBrowserWallet) }, "Use a browser wallet")]
    : [];
  const signOutButton = () =>
    h("button", { id: "sign-out", onclick: async () => { await signOut(); disconnect(); toast("Signed out"); route(); } }, "Sign out");

  if (!key && signedIn) {
    // Signed in with a browser wallet: its key is the extension's, not this page's.
    card.append(
      h("div", { class: "label" }, "Signed in as"),
      h("div", { class: "address", id: "wallet-address" }, session.owner),
      h("div", { class: "row status-row" }, h("span", { class: "dot on" }), h("span", { id: "signed-in-as" }, session.owner === "operator" ? "Signed in as the operator" : "Signed in with a browser wallet")),
      h("div", { class: "row" }, signOutButton()),
    );
  } else if (!key) {
    card.append(
      h("div", { class: "wallet-empty" },
        h("div", { class: "hero-mark small" }),
        h("h2", {}, "No wallet in this browser yet"),
        h("p", { class: "muted" }, "Create one to sign in. It is an Ethereum-style key: the same signature scheme as MetaMask."),
        h("button", { class: "primary", id: "create-wallet", onclick: () => { wallet.create(); route(); } }, "Create wallet")),
      ...external,
    );
  } else {
    const address = wallet.address(key);
    card.append(
      h("div", { class: "label" }, "Address"),
      h("div", { class: "address", id: "wallet-address" }, address),
      h("div", { class: "row status-row" },
        h("span", { class: `dot ${signedIn ? "on" : ""}` }),
        h("span", { id: "signed-in-as" }, signedIn ? `Signed in${session.owner === "operator" ? " as the operator" : ""}` : "Not signed in")),
      h("div", { class: "row" },
        signedIn
          ? signOutButton()
          : h("button", { class: "primary", id: "sign-in", onclick: (e) => enter(e.currentTarget, () => signIn(address, (message) => wallet.signMessage(key, message))) }, "Sign in with this wallet"),
        h("button", { class: "ghost danger", onclick: () => {
            if (confirm("Forget this key? Agents it owns can no longer be reached from this browser.")) { wallet.forget(); route(); }
          } }, "Forget key")),
      ...external,
    );
  }
  if (signedIn) main.append(apiKeysSection());
}
