"""Source adapters, one package per vendor; each normalizes into canonical records."""
