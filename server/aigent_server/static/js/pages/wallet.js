// The wallet: the browser-kept key, its address, sign in and out.
import { session, signIn, signOut } from "../api.js";
import { connect, disconnect } from "../events.js";
import { h, header, toast } from "../ui.js";
import * as wallet from "../wallet.js";
import { route } from "../main.js";

export async function walletPage(main) {
  const key = wallet.load();
  const card = h("div", { class: "card wallet-card" });
  main.append(header("Wallet", "Your key lives in this browser only; the server sees signatures, never the key."), card);
  if (!key) {
    card.append(
      h("div", { class: "wallet-empty" },
        h("div", { class: "hero-mark small" }),
        h("h2", {}, "No wallet in this browser yet"),
        h("p", { class: "muted" }, "Create one to sign in. It is an Ethereum-style key: the same signature scheme as MetaMask."),
        h("button", { class: "primary", id: "create-wallet", onclick: () => { wallet.create(); route(); } }, "Create wallet")),
    );
    return;
  }
  const address = wallet.address(key);
  const signedIn = Boolean(session.owner);
  card.append(
    h("div", { class: "label" }, "Address"),
    h("div", { class: "address", id: "wallet-address" }, address),
    h("div", { class: "row status-row" },
      h("span", { class: `dot ${signedIn ? "on" : ""}` }),
      h("span", { id: "signed-in-as" }, signedIn ? `Signed in${session.owner === "operator" ? " as the operator" : ""}` : "Not signed in")),
    h("div", { class: "row" },
      signedIn
        ? h("button", { id: "sign-out", onclick: async () => { await signOut(); disconnect(); toast("Signed out"); route(); } }, "Sign out")
        : h("button", { class: "primary", id: "sign-in", onclick: async (e) => {
            e.target.disabled = true;
            try {
              await signIn(address, (message) => wallet.signMessage(key, message));
              connect();
              toast("Signed in", "ok");
              location.hash = "#/agents";
            } catch (err) {
              toast(err.message, "error");
              e.target.disabled = false;
            }
          } }, "Sign in with this wallet"),
      h("button", { class: "ghost danger", onclick: () => {
          if (confirm("Forget this key? Agents it owns can no longer be reached from this browser.")) { wallet.forget(); route(); }
        } }, "Forget key")),
  );
}
