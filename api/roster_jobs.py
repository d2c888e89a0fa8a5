"""Placeholder router, filled in by the roster_jobs work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
