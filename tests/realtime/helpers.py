"""Real Socket.IO clients against a live server: in this process (LiveServer) or any URL."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable
from typing import Any

import socketio

from streamzy.guards.context import SYSTEM, RequestInfo
from tests.conftest import TEST_PASSWORD, LiveServer, login
from tests.waiting import DEADLINE, wait_until

_ids = itertools.count(1)
SESSION_COOKIE = "streamzy_session"


class ChatClient:
    """A python-socketio client that records everything the server sends it.

    ``target`` is a LiveServer or the base URL of a server in another process.
    """

    def __init__(self, target: LiveServer | str, *, cookie: str | None = None,
                 token: str | None = None, headers: dict[str, str] | None = None,
                 csrf: str | None = None, cookie_name: str = SESSION_COOKIE,
                 ssl_verify: bool = True) -> None:
        self.url = target if isinstance(target, str) else target.url
        self.cookie = cookie
        self.cookie_name = cookie_name
        self.token = token
        self.csrf = csrf
        self.headers = dict(headers or {})
        self.sio = socketio.AsyncClient(reconnection=False, ssl_verify=ssl_verify)
        self.messages: list[dict[str, Any]] = []
        self.events: list[tuple[str, Any]] = []
        self.ended: list[dict[str, Any]] = []
        self.connect_errors: list[Any] = []
        self.disconnected = asyncio.Event()
        self.sio.on("message", self._on_message)
        self.sio.on("session_ended", self._on_ended)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("connect_error", self._on_connect_error)
        for name in ("presence", "typing", "message_changed", "activity", "notify"):
            self.sio.on(name, self._recorder(name))

    def _recorder(self, name: str) -> Callable[[Any], Any]:
        async def record(data: Any) -> None:
            self.events.append((name, data))
        return record

    async def _on_message(self, data: dict[str, Any]) -> None:
        self.messages.append(data)

    async def _on_ended(self, data: dict[str, Any]) -> None:
        self.ended.append(data)

    async def _on_connect_error(self, data: Any = None) -> None:
        self.connect_errors.append(data)

    async def _on_disconnect(self, *args: Any) -> None:
        self.disconnected.set()

    async def connect(self) -> None:
        headers = dict(self.headers)
        if self.cookie:
            headers["Cookie"] = f"{self.cookie_name}={self.cookie}"
        auth: dict[str, str] | None = {"token": self.token} if self.token else None
        if self.csrf is not None:
            auth = {**(auth or {}), "csrf": self.csrf}
        await self.sio.connect(self.url, headers=headers, auth=auth, transports=["websocket"],
                               wait_timeout=5)

    async def call(self, event: str, data: Any = None, timeout: float = 10) -> Any:
        return await self.sio.call(event, data, timeout=timeout)

    async def send(self, room: int, text: str, client_msg_id: str | None = None) -> Any:
        cmid = client_msg_id or f"c{next(_ids)}"
        return await self.call("message", {"room": room, "client_msg_id": cmid, "text": text})

    def received(self, name: str) -> list[Any]:
        """The payloads of every ``name`` event received so far, in order."""
        return [data for event, data in self.events if event == name]

    def texts(self, room: int) -> list[str]:
        return [m["text"] for m in sorted(self.messages, key=lambda m: m["seq"])
                if m["room"] == room]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = DEADLINE,
                       what: str = "what the server sends") -> None:
        """Wait (bounded) until ``predicate`` holds for what this client has received."""
        await wait_until(predicate, timeout=timeout, what=what)

    async def end_reason(self, timeout: float = DEADLINE) -> str:
        """Why the server ended this client's session: waits for the notice and the hang-up."""
        await wait_until(lambda: self.ended and self.disconnected.is_set(), timeout=timeout,
                         what="session_ended and the disconnect")
        return str(self.ended[0]["reason"])

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


async def signed_in_cookie(server: LiveServer, username: str, *, admin: bool = False,
                           via_http: bool = False) -> str:
    """A session cookie for a new user: through the login form, or issued directly (bulk)."""
    user = await server.make_user(username, admin=admin)
    if not via_http:
        token, _ = await server.services.sessions.issue(
            user.id, RequestInfo("127.0.0.1", "streamzy-tests/1.0", ""))
        return token
    async with server.client() as client:
        response = await login(client, username, TEST_PASSWORD)
        assert response.status_code == 302, response.text
        return str(client.cookies["streamzy_session"])


async def make_room(server: LiveServer, name: str, *, private: bool = False,
                    owner: str = "roomadmin") -> int:
    admin = await server.services.accounts.by_username(owner)
    if admin is None:
        admin = await server.make_user(owner, admin=True)
    room = await server.services.rooms.create(admin.id, name, "", private, SYSTEM)
    return room.id


async def connected(target: LiveServer | str, username: str | None = None, *,
                    cookie: str | None = None, token: str | None = None,
                    rooms: Iterable[int] = (), **options: Any) -> ChatClient:
    """A connected ChatClient, the one way tests open a socket that should succeed.

    With ``username`` (on a LiveServer) as a new signed-in user; otherwise with the given
    session ``cookie`` or bot ``token``. Joins ``rooms`` and checks each join's ack. A
    refused connection fails with the server's reason. ``options`` go to ChatClient.
    """
    if username is not None:
        assert isinstance(target, LiveServer), "signing a new user in needs a LiveServer"
        cookie = await signed_in_cookie(target, username)
    client = ChatClient(target, cookie=cookie, token=token, **options)
    try:
        await client.connect()
    except socketio.exceptions.ConnectionError as exc:
        raise AssertionError(f"connect refused: {client.connect_errors or exc}") from None
    for room in rooms:
        joined = await client.call("join", {"room": room})
        assert joined["ok"], joined
    return client
