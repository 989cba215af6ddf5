// A new agent three ways (a template, a form, a file) and an agent's edit form, in one dialog.
// The server writes the character file from the fields and checks it as it checks an upload.
import { api } from "../api.js";
import { h, toast } from "../ui.js";

const MODELS = ["local", "openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-3-5-haiku-latest", "groq/llama-3.1-8b-instant", "ollama/llama3.2"];
const LIMITS = [
  ["per_hour", "Per hour"],
  ["per_day", "Per day"],
  ["max_per_payment", "Largest payment"],
  ["confirm_above", "Ask me above"],
];
const list = (text) => text.split(/[,\n]/).map((s) => s.trim()).filter(Boolean);
const lines = (text) => text.split("\n").map((s) => s.trim()).filter(Boolean);
// Limits are kept in the asset's smallest unit; people think in whole XRP.
const whole = (n, scale) => (n === undefined || n === null ? "" : String(n / 10 ** scale));
const units = (text, scale) => (text.trim() === "" ? undefined : Math.round(Number(text) * 10 ** scale));

function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", { class: "field-label" }, label), input, hint ? h("span", { class: "field-hint" }, hint) : null);
}

// Opens the dialog. `agent`: edit that agent; none: create. `upload`: the page's file input.
export async function openEditor({ agent = null, upload = null, onDone }) {
  const dialog = h("dialog", { class: "editor", id: "agent-editor" });
  document.body.append(dialog);
  const close = () => { dialog.close(); dialog.remove(); };
  dialog.addEventListener("cancel", (e) => { e.preventDefault(); close(); });
  dialog.addEventListener("click", (e) => { if (e.target === dialog) close(); });

  const error = h("pre", { class: "error-box", id: "editor-error", hidden: true });
  const inputs = {
    name: h("input", { name: "name", required: true, maxlength: 100, placeholder: "Ada", autocomplete: "off" }),
    bio: h("textarea", { name: "bio", rows: 2, placeholder: "Who the agent is, in a sentence or two." }),
    system: h("textarea", { name: "system", rows: 3, placeholder: "How it should behave (the system prompt)." }),
    model: h("input", { name: "model", list: "model-ids", placeholder: "the server's default" }),
    api_base: h("input", { name: "api_base", placeholder: "https://… (optional)", inputmode: "url" }),
    price: h("input", { name: "price", placeholder: "free", inputmode: "decimal" }),
    topics: h("input", { name: "topics", placeholder: "comma, separated" }),
    adjectives: h("input", { name: "adjectives", placeholder: "comma, separated" }),
    style: h("textarea", { name: "style", rows: 2, placeholder: "One rule per line" }),
  };
  const limits = Object.fromEntries(LIMITS.map(([key]) => [key, h("input", { name: `spending.${key}`, inputmode: "decimal", placeholder: "—" })]));
  const spends = h("input", { type: "checkbox", name: "spends", onchange: () => (limitsBox.hidden = !spends.checked) });
  const limitsBox = h("div", { class: "limits", hidden: true }, ...LIMITS.map(([key, label]) => field(label, limits[key])));
  const start = h("input", { type: "checkbox", name: "start", checked: true });
  let loaded = { spending: {} };
  let template = null;

  function fill(fields) {
    for (const [key, input] of Object.entries(inputs)) {
      const value = fields[key];
      if (value === undefined) continue;
      input.value = Array.isArray(value) ? value.join(key === "style" || key === "bio" ? "\n" : ", ") : value || "";
    }
    const xrp = (fields.spending || {}).XRP;
    spends.checked = Boolean(xrp);
    limitsBox.hidden = !xrp;
    const scale = xrp ? xrp.asset_scale ?? 6 : 6;
    for (const [key] of LIMITS) limits[key].value = xrp ? whole(xrp[key], scale) : "";
  }

  function collect() {
    const body = {
      bio: lines(inputs.bio.value),
      system: inputs.system.value.trim(),
      model: inputs.model.value.trim(),
      api_base: inputs.api_base.value.trim(),
      price: inputs.price.value.trim(),
      topics: list(inputs.topics.value),
      adjectives: list(inputs.adjectives.value),
      style: lines(inputs.style.value),
    };
    // Other assets' limits, and the XRP allowlist, are not on the form: they stay as they are.
    const spending = { ...(loaded.spending || {}) };
    const before = spending.XRP || {};
    delete spending.XRP;
    if (spends.checked) {
      const scale = before.asset_scale ?? 6;
      const xrp = { ...before, asset_scale: scale };
      for (const [key] of LIMITS) {
        const value = units(limits[key].value, scale);
        if (value === undefined) delete xrp[key];
        else xrp[key] = Number.isFinite(value) ? value : limits[key].value;
      }
      spending.XRP = xrp;
    }
    body.spending = spending;
    if (!agent) {
      body.name = inputs.name.value.trim();
      body.start = start.checked;
      if (template) body.template = template;
    }
    return body;
  }

  function showError(err) {
    error.textContent = err.status === 413 ? `Too large: ${err.message}` : err.message;
    error.hidden = false;
    for (const el of dialog.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    // The server names the field first ("price: ..."); mark that input.
    const name = err.message.split(":")[0].replace(/\[\d+\]$/, "").replace(/^spending\.XRP\./, "spending.");
    const bad = dialog.querySelector(`[name="${CSS.escape(name)}"]`);
    if (bad) { bad.setAttribute("aria-invalid", "true"); bad.focus(); }
    error.scrollIntoView({ block: "nearest" });
  }

  async function save(e) {
    e.preventDefault();
    error.hidden = true;
    const button = e.submitter || form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const path = agent ? `/api/agents/${encodeURIComponent(agent.name)}/fields` : "/api/agents";
      const result = await api(agent ? "PATCH" : "POST", path, collect());
      toast(agent ? `${result.name} saved` : `${result.name} created`, "ok");
      close();
      onDone();
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
    }
  }

  const form = h("form", { class: "editor-form", id: "agent-form", onsubmit: save },
    agent ? null : field("Name", inputs.name),
    field("Bio", inputs.bio),
    field("Instructions", inputs.system),
    h("div", { class: "two" },
      field("Model", inputs.model, "Empty: the server's default."),
      field("Price per message", inputs.price, "In XRP, e.g. 0.001. Empty: free.")),
    h("details", { class: "more" },
      h("summary", {}, "Personality and endpoint"),
      h("div", { class: "more-body" },
        h("div", { class: "two" }, field("Topics", inputs.topics), field("Adjectives", inputs.adjectives)),
        field("Style", inputs.style),
        field("Model API base", inputs.api_base, "Only hosts the server allows."))),
    h("label", { class: "check" }, spends, h("span", {}, "May spend XRP (pay other agents), within limits")),
    limitsBox,
    h("datalist", { id: "model-ids" }, ...MODELS.map((m) => h("option", { value: m }))),
    error,
    h("div", { class: "row editor-foot" },
      agent ? null : h("label", { class: "check" }, start, h("span", {}, "Start it now")),
      h("span", { class: "grow" }),
      h("button", { type: "button", class: "ghost", onclick: close }, "Cancel"),
      h("button", { type: "submit", class: "primary", id: "editor-save" }, agent ? "Save" : "Create agent")),
  );

  const title = h("h2", {}, agent ? `Edit ${agent.name}` : "New agent");
  const head = h("div", { class: "editor-head" }, title, h("button", { type: "button", class: "ghost close", "aria-label": "Close", onclick: close }, "✕"));
  const body = h("div", { class: "editor-body" });
  dialog.append(head, body);

  if (agent) {
    body.append(form);
    dialog.showModal();
    try {
      loaded = await api("GET", `/api/agents/${encodeURIComponent(agent.name)}/fields`);
      fill(loaded);
      if (loaded.format && loaded.format !== "aigent") {
        form.prepend(h("p", { class: "notice" }, `This agent came from an ${loaded.format} file; saving writes it as an aigent character.`));
      }
    } catch (err) {
      showError(err);
    }
    return;
  }

  // Creating: choose a way first.
  const ways = h("div", { class: "ways", role: "tablist" });
  const panes = {};
  function show(way) {
    for (const b of ways.children) b.setAttribute("aria-selected", String(b.dataset.way === way));
    for (const [key, pane] of Object.entries(panes)) pane.hidden = key !== way;
  }
  const wayButton = (way, label, sub) =>
    h("button", { type: "button", role: "tab", class: "way", "data-way": way, onclick: () => show(way) }, h("span", { class: "strong" }, label), h("span", { class: "muted small" }, sub));
  ways.append(
    wayButton("template", "Template", "Start from an example"),
    wayButton("form", "Form", "Fill in the fields"),
    wayButton("file", "File", "aigent, ElizaOS, ZerePy"),
  );

  const templates = h("div", { class: "templates", id: "templates" });
  panes.template = templates;
  panes.form = h("div", {}, form);
  panes.file = h("div", { class: "file-pane" },
    h("p", { class: "muted" }, "A character file in aigent, ElizaOS (0.x or 1.x) or ZerePy format, JSON or YAML."),
    h("button", { type: "button", class: "primary", id: "choose-file", onclick: () => { close(); upload.click(); } }, "Choose a file…"));
  body.append(ways, templates, panes.form, panes.file);
  show("template");
  dialog.showModal();
  try {
    for (const t of await api("GET", "/api/templates")) {
      templates.append(h("button", { type: "button", class: "template", "data-template": t.id, onclick: () => {
        template = t.id;
        fill(t.fields);
        title.textContent = `New agent: ${t.title}`;
        show("form");
        inputs.name.focus();
      } }, h("span", { class: "strong" }, t.title), h("span", { class: "muted small" }, t.description)));
    }
  } catch (err) {
    toast(err.message, "error");
  }
}
