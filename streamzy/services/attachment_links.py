"""Linking uploads to the message that carries them, inside the group-commit transaction.

``MessagePosting`` checked each file when the message was submitted (the sender's own,
same room, unclaimed: ``Attachments.claim``); here, in the transaction that inserts the
message, each row gets its ``message_id`` only if it is still unclaimed and still there.
A file claimed or purged in between fails that one message (``AttachmentTaken``), never
the batch. Messages without files never reach this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text

from streamzy.storage.db import Tx

_LINK = text("UPDATE attachments SET message_id = :message WHERE id = :id "
             "AND message_id IS NULL AND uploader_id = :user AND room_id = :room RETURNING id")


class AttachmentTaken(Exception):
    """A file of this message was claimed by another message (or purged) meanwhile."""

    def __init__(self, item: Any) -> None:
        super().__init__("an attachment was taken by another message")
        self.item = item


def link_attachments(tx: Tx, items: Sequence[Any], ids: Sequence[int]) -> None:
    """Give each item's attachments its new message id; AttachmentTaken when one is gone."""
    for item, message_id in zip(items, ids, strict=True):
        for attachment_id in item.attachments:
            if not tx.rows(_LINK, {"message": message_id, "id": attachment_id,
                                   "user": item.sender.user_id, "room": item.room_id}):
                raise AttachmentTaken(item)
