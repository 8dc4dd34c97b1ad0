"""A small real HTTP server that plays Supervisor's API and Home Assistant's REST API behind it.

It follows what Supervisor does: a request without a token is refused with 401 and one with a
wrong token with 403 (supervisor/api/middleware/security.py, plain-text aiohttp bodies); a
discovery for a service the add-on's config.yaml does not list is refused with 403 and a JSON
message; the uuid of an (add-on, service) pair is kept when the same pair sends again (the
config is updated in place); the Core API proxy answers 401 for a wrong token and for an add-on
without `homeassistant_api` alike (supervisor/api/proxy.py); `GET /addons/self/options/config`
returns the options (config.yaml's defaults, then the user's) as `bashio::config` reads them;
`GET /info` (`bashio::info.hostname`) and `GET /addons/self/info` (`bashio::addon.port`, the host
ports mapped under Network) answer what every add-on may read.
Every request is recorded so tests can check exactly what the add-on sent.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import yaml

from tests.addon.addon_rules import check_options
from tests.backup_target import REPO_ROOT

ADDON_CONFIG = REPO_ROOT / "config.yaml"
NOTIFICATION_PATH = "/core/api/services/persistent_notification/create"
OPTIONS_PATH = "/addons/self/options/config"
INFO_PATH = "/info"
ADDON_INFO_PATH = "/addons/self/info"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Discovery:
    """A discovery message Supervisor keeps for Home Assistant."""

    addon: str
    service: str
    config: dict[str, Any]


@dataclass
class SupervisorStandIn:
    """Supervisor's /discovery and Core API proxy, for one add-on, on 127.0.0.1."""

    token: str
    addon_config: Path = ADDON_CONFIG
    core_running: bool = True
    # What the user set in the Configuration tab, over config.yaml's `options`.
    options: dict[str, Any] = field(default_factory=dict)
    # The host's name, and the host ports set under Network (None: config.yaml's `ports`).
    hostname: str = "homeassistant"
    host_ports: dict[str, int | None] | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    discoveries: dict[str, Discovery] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def addon(self) -> dict[str, Any]:
        """The add-on's config.yaml, read as Supervisor reads it."""
        data: dict[str, Any] = yaml.safe_load(self.addon_config.read_text())
        return data

    @property
    def url(self) -> str:
        """Base URL to give the add-on (what http://supervisor is inside the add-on)."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        """Serve in a background thread."""
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                standin._handle(self, "POST")

            def do_DELETE(self) -> None:
                standin._handle(self, "DELETE")

            def do_GET(self) -> None:
                standin._handle(self, "GET")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode(errors="replace")
        self.requests.append(
            RecordedRequest(method, handler.path, dict(handler.headers.items()), body)
        )
        token = handler.headers.get("Authorization", "").removeprefix("Bearer").strip()
        if handler.path.startswith("/core/api/"):
            # The proxy checks the token itself, and answers 401 for every refusal.
            self._core(handler, method, body, token)
            return
        if not token:
            self._refuse(handler, 401, "Unauthorized")
            return
        if token != self.token:
            self._refuse(handler, 403, "Forbidden")
            return
        slug = str(self.addon["slug"])
        if method == "GET" and handler.path == OPTIONS_PATH:
            self._options(handler)
        elif method == "GET" and handler.path == INFO_PATH:
            self._reply(handler, 200, {"result": "ok", "data": {"hostname": self.hostname}})
        elif method == "GET" and handler.path == ADDON_INFO_PATH:
            self._addon_info(handler, slug)
        elif method == "POST" and handler.path == "/discovery":
            self._discovery(handler, slug, body)
        elif method == "DELETE" and handler.path.startswith("/discovery/"):
            self.discoveries.pop(handler.path.rsplit("/", 1)[1], None)
            self._reply(handler, 200, {"result": "ok", "data": {}})
        else:
            self._reply(handler, 404, {"result": "error", "message": "Not found"})

    def _discovery(self, handler: BaseHTTPRequestHandler, slug: str, body: Any) -> None:
        service = body.get("service") if isinstance(body, dict) else None
        config = body.get("config") if isinstance(body, dict) else None
        if not isinstance(service, str) or not isinstance(config, dict):
            self._reply(handler, 400, {"result": "error", "message": "Invalid discovery body"})
            return
        if service not in (self.addon.get("discovery") or []):
            message = (
                f"Add-ons {slug} attempted to send discovery for service {service} which is "
                "not listed in its config. Please report this to the maintainer of the add-on"
            )
            self._reply(handler, 403, {"result": "error", "message": message})
            return
        for key, existing in self.discoveries.items():
            if existing.addon == slug and existing.service == service:
                existing.config = config
                self._reply(handler, 200, {"result": "ok", "data": {"uuid": key}})
                return
        key = uuid.uuid4().hex
        self.discoveries[key] = Discovery(slug, service, config)
        self._reply(handler, 200, {"result": "ok", "data": {"uuid": key}})

    def _addon_info(self, handler: BaseHTTPRequestHandler, slug: str) -> None:
        addon = self.addon
        network = self.host_ports if self.host_ports is not None else addon.get("ports", {})
        data = {"slug": slug, "name": addon["name"], "version": addon["version"]}
        self._reply(handler, 200, {"result": "ok", "data": {**data, "network": network}})

    def _options(self, handler: BaseHTTPRequestHandler) -> None:
        options = {**self.addon.get("options", {}), **self.options}
        if check_options(options, self.addon.get("schema", {}), ""):
            message = "Invalid configuration data for the add-on"
            self._reply(handler, 400, {"result": "error", "message": message})
            return
        self._reply(handler, 200, {"result": "ok", "data": options})

    def _core(self, handler: BaseHTTPRequestHandler, method: str, body: Any, token: str) -> None:
        if token != self.token or not self.addon.get("homeassistant_api"):
            self._refuse(handler, 401, "Unauthorized")
            return
        if not self.core_running:
            self._reply(handler, 502, {"result": "error", "message": "Bad Gateway"})
            return
        if method == "POST" and handler.path == NOTIFICATION_PATH and isinstance(body, dict):
            self.notifications.append(body)
            self._reply(handler, 200, [])
            return
        self._reply(handler, 404, {"message": "Not found"})

    @staticmethod
    def _refuse(handler: BaseHTTPRequestHandler, status: int, reason: str) -> None:
        # aiohttp's own HTTPUnauthorized/HTTPForbidden: plain text, no JSON envelope.
        SupervisorStandIn._send(handler, status, f"{status}: {reason}".encode(), "text/plain")

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        SupervisorStandIn._send(handler, status, json.dumps(body).encode(), "application/json")

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, raw: bytes, content_type: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", f"{content_type}; charset=utf-8")
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)


@contextmanager
def standin_without(key: str, token: str, folder: Path) -> Iterator[SupervisorStandIn]:
    """Serve a stand-in for an add-on whose config.yaml lacks `key` (written into `folder`)."""
    addon = yaml.safe_load(ADDON_CONFIG.read_text())
    del addon[key]
    # Not named config.yaml: Supervisor would read it as another add-on.
    config = folder / f"addon-without-{key}.yaml"
    config.write_text(yaml.safe_dump(addon))
    standin = SupervisorStandIn(token=token, addon_config=config).start()
    try:
        yield standin
    finally:
        standin.stop()
