// Chat with one agent; the reply streams in as the model writes it.
import { api, streamPost } from "../api.js";
import { empty, h, header, toast } from "../ui.js";

export async function chatPage(main, [chosen]) {
  const agents = (await api("GET", "/api/agents")).filter((a) => a.state === "running");
  if (!agents.length) {
    main.append(header("Chat"), empty("No running agents", "Start an agent to talk to it.", h("a", { class: "button", href: "#/agents" }, "Go to agents")));
    return;
  }
  const name = agents.some((a) => a.name === chosen) ? chosen : agents[0].name;
  const select = h("select", { id: "chat-agent", onchange: () => (location.hash = `#/chat/${encodeURIComponent(select.value)}`) },
    ...agents.map((a) => h("option", { value: a.name, selected: a.name === name }, a.name)));
  const log = h("div", { class: "messages", id: "messages" });
  const text = h("textarea", { id: "chat-input", rows: 1, placeholder: `Message ${name}…`, onkeydown: (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); }
  } });
  const button = h("button", { class: "primary", id: "send", onclick: () => send() }, "Send");
  main.append(header("Chat", null, select), h("div", { class: "card chat" }, log, h("div", { class: "composer" }, text, button)));

  const bubble = (role, content, meta) =>
    h("div", { class: `bubble ${role}` }, h("div", { class: "text" }, content), meta ? h("div", { class: "meta" }, meta) : null);
  const scroll = () => (log.scrollTop = log.scrollHeight);

  const history = await api("GET", `/api/agents/${encodeURIComponent(name)}/messages?room=web`);
  for (const m of history.messages) log.append(bubble(m.role === "user" ? "user" : "agent", m.text));
  if (!history.messages.length) log.append(h("div", { class: "hint muted" }, `Say hello to ${name}.`));
  scroll();

  async function send() {
    const message = text.value.trim();
    if (!message) return;
    text.value = "";
    button.disabled = true;
    log.querySelector(".hint")?.remove();
    log.append(bubble("user", message));
    const answer = bubble("agent streaming", "");
    answer.id = "streaming";
    log.append(answer);
    scroll();
    const out = answer.querySelector(".text");
    try {
      for await (const { event, data } of streamPost(`/api/agents/${encodeURIComponent(name)}/messages`, { text: message, room: "web" })) {
        if (event === "text") { out.textContent += data.text; scroll(); }
        else if (event === "reply") {
          out.textContent = data.text;
          const ms = data.timings.total ? `${Math.round(data.timings.total)} ms` : "";
          answer.append(h("div", { class: "meta" }, [data.model, ms].filter(Boolean).join(" · ")));
        } else if (event === "error") throw new Error(data.detail);
      }
    } catch (err) {
      out.textContent = err.message;
      answer.classList.add("failed");
      toast(err.message, "error");
    }
    answer.classList.remove("streaming");
    answer.removeAttribute("id");
    button.disabled = false;
    text.focus();
    scroll();
  }
}
