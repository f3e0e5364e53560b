"""Sign-in notices: signed-in pages carry the table the scripts use; each notice has words."""

from __future__ import annotations

import json
import re

from tests.conftest import LiveServer, login

NOTICES_BLOCK = re.compile(
    r'<script type="application/json" id="sign-in-notices">(.*?)</script>', re.S)


async def test_signed_in_pages_carry_the_table_and_each_notice_has_words(
        server: LiveServer) -> None:
    await server.make_user("alice")
    async with server.client() as client:
        assert not NOTICES_BLOCK.search((await client.get("/login")).text)  # signed out: none
        await login(client, "alice")
        page = await client.get("/account")
        found = NOTICES_BLOCK.search(page.text)
        assert found, "signed-in pages hand the notices to app.js"
        table = json.loads(found.group(1))  # raw text: no entities
        assert table["forEnding"]["expired"] == "idle"  # housekeeping ends idle sessions
        assert table["forEnding"]["session_expired"] == "idle"  # a refused handshake
        assert "token_revoked" not in table["forEnding"]
        assert table["otherwise"] == "ended" and table["inactive"] == "inactive"
        codes = {*table["forEnding"].values(), table["otherwise"], table["inactive"]}
    async with server.client() as anonymous:
        for code in sorted(codes | {"logged_out"}):
            shown = await anonymous.get("/login", params={"reason": code})
            assert 'id="login-notice"' in shown.text, code
        unknown = await anonymous.get("/login", params={"reason": "<b>made-up</b>"})
        assert 'id="login-notice"' not in unknown.text and "made-up" not in unknown.text
