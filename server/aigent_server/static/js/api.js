// The server's REST API, with the session's CSRF token on every state-changing request.
let csrf = null;
export const session = { owner: null };

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function fail(response) {
  let detail = response.statusText;
  try {
    const body = await response.json();
    detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {}
  throw new ApiError(response.status, detail);
}

export async function api(method, path, body) {
  const headers = {};
  if (csrf && method !== "GET") headers["X-CSRF-Token"] = csrf;
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  if (!response.ok) await fail(response);
  return response.status === 204 ? null : response.json();
}

export async function restore() {
  try {
    const s = await api("GET", "/api/auth/session");
    csrf = s.csrf;
    session.owner = s.owner;
  } catch {
    csrf = null;
    session.owner = null;
  }
  return session.owner;
}

export async function signIn(address, sign) {
  const challenge = await api("POST", "/api/auth/challenge", { address });
  const result = await api("POST", "/api/auth/verify", {
    nonce: challenge.nonce,
    signature: await sign(challenge.message), // a browser wallet signs asynchronously
  });
  csrf = result.csrf;
  session.owner = result.address;
  return result.address;
}

export async function signOut() {
  await api("POST", "/api/auth/logout");
  csrf = null;
  session.owner = null;
}

// Server-sent events from a POST (EventSource only does GET): yields {event, data}.
export async function* streamPost(path, body) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream", "X-CSRF-Token": csrf || "" },
    body: JSON.stringify(body),
  });
  if (!response.ok) await fail(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) yield { event, data: JSON.parse(data) };
    }
  }
}
