"""``aigent serve-model``: a local model behind the OpenAI chat-completions wire format.

Any OpenAI-compatible client reaches it, including aigent's litellm plugin with
``{"model": "openai/local", "api_base": "http://127.0.0.1:8080/v1"}``.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from aigent import ChatMessage, ModelResponse
from aigent_local.model import LocalModel


class ChatRequest(BaseModel):
    model: str = "local"
    messages: list[ChatMessage]
    stream: bool = False
    max_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0, le=2)


def make_server(model: LocalModel, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def log_message(self, format: str, *args: Any) -> None:  # quiet by default
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/") in {"/v1/models", "/models"}:
                self._json(200, {"object": "list", "data": [_model_card(model)]})
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:
            if self.path.rstrip("/") not in {"/v1/chat/completions", "/chat/completions"}:
                self._error(404, f"no route {self.path}")
                return
            length = int(self.headers.get("content-length") or 0)
            try:
                request = ChatRequest.model_validate_json(self.rfile.read(length))
            except ValidationError as exc:
                self._error(400, f"invalid request: {exc.errors(include_url=False)[0]['msg']}")
                return
            if request.stream:
                self._stream(request)
                return
            response = model.complete(request.messages, **_overrides(request))
            self._json(200, _completion(model, response))

        def _stream(self, request: ChatRequest) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.end_headers()
            ident = f"chatcmpl-{uuid.uuid4().hex}"
            for item in model.stream_sync(request.messages, **_overrides(request)):
                if isinstance(item, ModelResponse):
                    delta: dict[str, Any] = {}
                    finish: str | None = "stop"
                else:
                    delta, finish = {"content": item}, None
                chunk = {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model.model_id,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.close_connection = True

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._json(status, {"error": {"message": message, "type": "invalid_request_error"}})

    return ThreadingHTTPServer((host, port), Handler)


def serve(model: LocalModel, host: str, port: int) -> None:
    server = make_server(model, host, port)
    print(f"serving {model.model_id} at http://{host}:{port}/v1", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _overrides(request: ChatRequest) -> dict[str, Any]:
    """What a client may set per request; the penalties and the repeat guard always apply."""
    return {"max_tokens": request.max_tokens, "temperature": request.temperature}


def _model_card(model: LocalModel) -> dict[str, Any]:
    return {"id": model.model_id, "object": "model", "owned_by": "aigent-local"}


def _completion(model: LocalModel, response: ModelResponse) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model.model_id,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": response.text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": response.usage.prompt_tokens,
            "completion_tokens": response.usage.completion_tokens,
            "total_tokens": response.usage.prompt_tokens + response.usage.completion_tokens,
        },
    }
