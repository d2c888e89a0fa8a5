"""Manual availability uploads (iCalendar, CSV): a source without an API."""
