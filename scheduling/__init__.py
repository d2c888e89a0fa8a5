"""Scheduling on canonical records: shifts, rosters, slot ranking, waitlist backfill."""
