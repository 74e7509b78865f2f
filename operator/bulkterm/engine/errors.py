"""Errors the engine and the code that hosts it (the operator, ``bulkterm apply``) agree on."""

from __future__ import annotations


class RecordNotWritten(Exception):
    """Raised by a progress callback when a record that announces sends could not be saved.

    The record written before a send is what a restarted process reads to know what was sent;
    sending without it would make a restart send the same bulk PATCH again. So the engine does
    not send, backs off, and offers the record again.
    """
