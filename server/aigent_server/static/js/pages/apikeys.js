// API tokens for scripts: made here (the token is shown once), listed by name and prefix,
// revoked with one click. A script sends one as "Authorization: Bearer <token>".
import { api } from "../api.js";
import { h, toast } from "../ui.js";

const day = (at) => (at ? new Date(at * 1000).toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" }) : null);
const EXPIRY = [["", "Never expires"], ["30", "30 days"], ["90", "90 days"], ["365", "1 year"]];

export function apiKeysSection() {
  const list = h("div", { class: "token-list", id: "token-list" });
  const shown = h("div", { id: "token-shown" });
  const name = h("input", { id: "token-name", placeholder: "What it is for, e.g. nightly report", maxlength: 100 });
  const expiry = h("select", { id: "token-expiry", "aria-label": "Expires" }, ...EXPIRY.map(([v, label]) => h("option", { value: v }, label)));
  const card = h("section", { class: "card tokens-card", id: "api-tokens" },
    h("div", {}, h("h2", {}, "API tokens"),
      h("p", { class: "muted small" }, "For scripts: send one as ", h("code", {}, "Authorization: Bearer …"), ". It acts as you; revoke it when it is no longer needed.")),
    h("form", { class: "token-new", onsubmit: create }, name, expiry, h("button", { class: "primary", id: "token-create" }, "Create token")),
    shown, list);

  async function create(e) {
    e.preventDefault();
    if (!name.value.trim()) { name.focus(); return; }
    try {
      const body = { name: name.value.trim() };
      if (expiry.value) body.expires_in_days = Number(expiry.value);
      const made = await api("POST", "/api/auth/tokens", body);
      name.value = "";
      const code = h("code", { id: "token-secret" }, made.token);
      shown.replaceChildren(h("div", { class: "token-secret" },
        h("span", { class: "strong" }, `${made.name}: copy it now, it is not shown again`), code,
        h("div", { class: "row" }, h("button", { type: "button", onclick: async () => {
          try { await navigator.clipboard.writeText(made.token); toast("Copied", "ok"); } catch { toast("Select the token and copy it", "info"); }
        } }, "Copy"), h("button", { type: "button", class: "ghost", onclick: () => shown.replaceChildren() }, "Done"))));
      await render();
    } catch (err) {
      toast(err.message, "error");
    }
  }

  async function revoke(key) {
    if (!confirm(`Revoke "${key.name}"? Scripts using it stop working.`)) return;
    try { await api("DELETE", `/api/auth/tokens/${key.id}`); toast("Token revoked"); } catch (err) { toast(err.message, "error"); }
    await render();
  }

  async function render() {
    const keys = await api("GET", "/api/auth/tokens");
    list.replaceChildren(...(keys.length
      ? keys.map((k) => h("div", { class: "token-row", "data-token": k.name },
          h("div", { class: "grow" },
            h("div", { class: "strong" }, k.name),
            h("div", { class: "muted small" }, h("span", { class: "mono" }, `${k.prefix}…`), ` · created ${day(k.created_at)}`,
              ` · ${k.last_used_at ? `last used ${day(k.last_used_at)}` : "never used"}`,
              k.expires_at ? ` · expires ${day(k.expires_at)}` : "")),
          h("button", { class: "ghost danger", onclick: () => revoke(k) }, "Revoke")))
      : [h("p", { class: "muted small" }, "No tokens yet.")]));
  }

  render().catch((err) => toast(err.message, "error"));
  return card;
}
