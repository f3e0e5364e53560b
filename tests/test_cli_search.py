"""``streamzy search-index rebuild`` as an operator runs it (a real subprocess on the test
database): messages whose terms are missing are found again, for one room or all."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete

from streamzy.services.message_writer import Sender
from streamzy.storage.models import SearchTerm
from streamzy.wiring import Services
from tests.conftest import CLIENT, make_user
from tests.test_cli_keys import env_for, streamzy


async def test_rebuild_indexes_messages_stored_without_terms(services: Services,
                                                             tmp_path: Path) -> None:
    owner = await make_user(services, "olivia")
    speaker = Sender(owner.id, owner.username, owner.display_name)
    rooms = [await services.rooms.create(owner.id, name, "", False, CLIENT)
             for name in ("big", "small")]
    for n in range(30):
        await services.messages.send(speaker, rooms[n % 2], f"m{n}", f"quetzalcoatl {n}", CLIENT)
    async with services.db.unit() as db:
        await db.execute(delete(SearchTerm))
    assert (await services.search.search(owner.id, "quetzalcoatl")).hits == []
    keys = [k.get_secret_value() for k in services.settings.message_keys]
    env = env_for(services, keys, tmp_path)

    one = streamzy(env, tmp_path, "search-index", "rebuild", "--room", "small",
                   "--batch-size", "4", "--no-progress")
    assert one.returncode == 0, one.stderr
    assert "15 message(s) in 1 room(s) indexed" in one.stdout
    every = streamzy(env, tmp_path, "search-index", "rebuild", "--no-progress")
    assert every.returncode == 0, every.stderr
    assert "30 message(s) in 2 room(s) indexed" in every.stdout
    bad = streamzy(env, tmp_path, "search-index", "rebuild", "--batch-size", "0")
    assert bad.returncode == 2
    found = await services.search.search(owner.id, "quetzalcoatl", limit=50)
    assert sorted(int(h.snippet.split()[1]) for h in found.hits) == list(range(30))
