"""The epic adapter: client, normalizer, write-back and sandbox (next milestone)."""
