"""Where a sync stands, as a plain dict the hub stores beside each page.

``sync_tokens`` hold each calendar's nextSyncToken from its last complete listing. ``pass``
is the unfinished round: whether its freebusy page was stored, the calendars whose listing
is done, and for the calendar being listed the page token and the query it belongs to (a
page token is only good with the same query). A finished round leaves ``pass`` out.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

VERSION = 1


@dataclass
class Listing:
    page_token: str | None
    sync_token: str | None
    time_min: str | None


@dataclass
class SyncCursor:
    sync_tokens: dict[str, str] = field(default_factory=dict)
    in_pass: bool = False
    freebusy_done: bool = False
    done: list[str] = field(default_factory=list)
    listing: dict[str, Listing] = field(default_factory=dict)

    @classmethod
    def read(cls, raw: dict[str, Any] | None) -> SyncCursor:
        if not raw or raw.get("v") != VERSION:
            return cls()
        tokens = {str(k): str(v) for k, v in (raw.get("sync_tokens") or {}).items()}
        current = raw.get("pass")
        if not isinstance(current, dict):
            return cls(sync_tokens=tokens)
        return cls(
            sync_tokens=tokens,
            in_pass=True,
            freebusy_done=bool(current.get("freebusy_done")),
            done=[str(c) for c in current.get("done") or []],
            listing={
                str(cid): Listing(
                    entry.get("page_token"), entry.get("sync_token"), entry.get("time_min")
                )
                for cid, entry in (current.get("listing") or {}).items()
            },
        )

    def dump(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": VERSION, "sync_tokens": dict(self.sync_tokens)}
        if self.in_pass:
            out["pass"] = {
                "freebusy_done": self.freebusy_done,
                "done": list(self.done),
                "listing": {
                    cid: {
                        "page_token": entry.page_token,
                        "sync_token": entry.sync_token,
                        "time_min": entry.time_min,
                    }
                    for cid, entry in self.listing.items()
                },
            }
        return copy.deepcopy(out)
