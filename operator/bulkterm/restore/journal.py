"""The restore's own record: which terminated target got which new item.

The AI API cannot carry an idempotency key on a create (a deployment has no name or label), so
a restore keeps a journal and writes it ahead: a creation is journalled as requested before its
POST goes out and completed with the new id after. A second restore creates nothing for a
completed entry. A requested entry without an id (the process died, or the answer was lost) is
settled by looking: an item of the same kind and configuration created since the request and
claimed by no other entry is taken as its result; only when there is none is it created again.

Where the journal lives is the caller's: a file beside a saved ``bulkterm apply`` output, or a
ConfigMap owned by the BulkTermination (``bulkterm.plugin.kube``).
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from bulkterm.aiapi.models import Kind


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class JournalEntry(_Model):
    kind: Kind
    old_id: str
    configuration_id: str
    requested_at: datetime
    #: The item created for it; ``None`` while the answer is not known.
    new_id: str | None = None


class Journal(_Model):
    #: What was restored: ``bulktermination <namespace>/<name> <uid>`` or the saved file's path.
    source: str
    entries: list[JournalEntry] = Field(default_factory=list)

    def restored(self) -> dict[tuple[Kind, str], str]:
        return {(e.kind, e.old_id): e.new_id for e in self.entries if e.new_id}

    def awaiting(self) -> set[tuple[Kind, str]]:
        """Targets whose creation was requested and is not known to have happened or not."""
        return {(e.kind, e.old_id) for e in self.unsettled()}

    def unsettled(self) -> list[JournalEntry]:
        return [e for e in self.entries if e.new_id is None]

    def dumps(self) -> str:
        return self.model_dump_json(by_alias=True, indent=1)


class JournalUnreadable(ValueError):
    """A journal that is not one this version wrote: nothing is created on a guess."""


def loads(text: str, where: str) -> Journal:
    try:
        return Journal.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise JournalUnreadable(f"the restore journal {where} is unreadable: {reason}") from None


class JournalStore(Protocol):
    """Reads and durably writes one journal; ``save`` returns only once it is written."""

    where: str

    def load(self) -> Journal | None: ...

    def save(self, journal: Journal) -> None: ...


class FileJournal:
    """A JSON file, replaced atomically (write to a temporary file, fsync, rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def load(self) -> Journal | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        return loads(text, self.where)

    def save(self, journal: Journal) -> None:
        directory = self.path.parent
        fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(journal.dumps())
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
