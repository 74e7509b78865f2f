"""The options of ``bulkterm apply``, as its command line sets them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ApplyOptions:
    files: Sequence[str]
    recursive: bool = False
    service_key: str | None = None
    simulator: bool = False
    resource_group: str | None = None
    dry_run: bool = False
    timeout_seconds: int | None = None
    #: How long the AI API may stay unreadable before a run says Stalled (``--stall-after``).
    stall_after_seconds: float = 60.0
    output: str = "yaml"
    force_terminal: bool | None = None
    #: PEM file of the CAs to trust for the AI API (``--ca-bundle``); unused with ``simulator``
    #: (the embedded simulator is plain HTTP on loopback).
    ca_bundle: str | None = None
    #: Accept a service key with plain-HTTP URLs (``--allow-plain-http``); the embedded
    #: simulator needs no such leave (it is plain HTTP on loopback, inside this process).
    allow_plain_http: bool = False
