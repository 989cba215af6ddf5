// Agents: what runs, its model, price and earnings; create (template, form, file); edit; start
// and stop.
import { api } from "../api.js";
import { openEditor } from "./agent-editor.js";
import { listen } from "../events.js";
import { empty, h, header, pill, toast } from "../ui.js";

export async function agentsPage(main) {
  const grid = h("div", { class: "grid", id: "agent-grid" });
  const error = h("pre", { class: "error-box", id: "upload-error", hidden: true });
  const input = h("input", { type: "file", id: "upload", accept: ".json,.yaml,.yml", hidden: true, onchange: () => upload(input.files[0]) });
  const drop = h("button", { class: "primary", id: "new-agent", onclick: () => openEditor({ upload: input, onDone: render }) }, "+ New agent");
  main.append(header("Agents", "Character files in aigent, ElizaOS or ZerePy format.", drop), input, error, grid);

  async function upload(file) {
    if (!file) return;
    error.hidden = true;
    const form = new FormData();
    form.append("file", file);
    try {
      const agent = await api("POST", "/api/agents", form);
      toast(`${agent.name} created`, "ok");
      await render();
    } catch (err) {
      error.textContent = err.status === 413 ? `The file is too large: ${err.message}` : err.message;
      error.hidden = false;
    }
    input.value = "";
  }

  async function act(agent, action) {
    try {
      if (action === "delete") {
        if (!confirm(`Delete ${agent.name}? Its data stays on the server's disk.`)) return;
        await api("DELETE", `/api/agents/${encodeURIComponent(agent.name)}`);
      } else await api("POST", `/api/agents/${encodeURIComponent(agent.name)}/${action}`);
    } catch (err) {
      toast(err.message, "error");
    }
    await render();
  }

  function card(agent) {
    const running = agent.state === "running";
    const initials = agent.name.split(/\s+/).map((w) => w[0]).join("").slice(0, 2).toUpperCase();
    return h("article", { class: "card agent", "data-agent": agent.name },
      h("div", { class: "agent-head" },
        h("div", { class: "avatar" }, initials),
        h("div", { class: "grow" }, h("h3", {}, agent.name), h("div", { class: "muted small" }, agent.format || "")),
        pill(agent.state)),
      agent.bio.length ? h("p", { class: "bio" }, agent.bio[0]) : null,
      agent.error ? h("pre", { class: "error-box small" }, agent.error) : null,
      h("dl", { class: "facts" },
        h("dt", {}, "Model"), h("dd", {}, agent.model),
        h("dt", {}, "Price"), h("dd", {}, agent.price || "free"),
        h("dt", {}, "Earned"), h("dd", {}, agent.earned || "—"),
        agent.address ? [h("dt", {}, "ILP"), h("dd", { class: "mono" }, agent.address)] : null,
        // Servers sharing one database: which one runs it, and whether its heartbeat is fresh.
        agent.server ? [h("dt", {}, "Server"), h("dd", { class: "mono server" }, agent.server,
          healthy[agent.server] === false ? " (silent)" : "")] : null),
      h("div", { class: "row" },
        running
          ? h("a", { class: "button primary", href: `#/chat/${encodeURIComponent(agent.name)}` }, "Chat")
          : h("button", { class: "primary", onclick: () => act(agent, "start") }, "Start"),
        running ? h("button", { onclick: () => act(agent, "stop") }, "Stop") : null,
        agent.uploaded ? h("button", { class: "edit", onclick: () => openEditor({ agent, onDone: render }) }, "Edit") : null,
        h("button", { class: "ghost danger", onclick: () => act(agent, "delete") }, "Delete")),
    );
  }

  let healthy = {};
  async function render() {
    const [agents, fleet] = await Promise.all([api("GET", "/api/agents"), api("GET", "/api/servers")]);
    healthy = Object.fromEntries(fleet.servers.map((s) => [s.name, s.healthy]));
    grid.replaceChildren(
      ...(agents.length
        ? agents.map(card)
        : [empty("No agents yet", "Start from a template, fill a form, or upload a character file.", h("button", { onclick: () => openEditor({ upload: input, onDone: render }) }, "Create your first agent"))]),
    );
  }

  await render();
  return listen((event) => {
    if (event && event.kind === "agent.state") render();
  });
}
