"""Tuning of the AI API client (:class:`ClientSettings`): timeouts, retries, pacing, paging."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ClientSettings(BaseModel):
    """Tuning of the client; defaults suit AI Core, tests shrink the delays."""

    model_config = ConfigDict(frozen=True)

    timeout_seconds: float = Field(default=30.0, gt=0)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Attempts per call, the first included: the retry budget.
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_initial_seconds: float = Field(default=0.5, ge=0)
    backoff_max_seconds: float = Field(default=30.0, ge=0)
    retry_after_cap_seconds: float = Field(default=120.0, ge=0)
    concurrency: int = Field(default=16, ge=1, le=256)
    rate_limit_per_second: float | None = Field(default=None, gt=0)
    page_size: int = Field(default=1000, ge=1, le=10000)
