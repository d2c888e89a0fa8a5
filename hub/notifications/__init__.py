"""Notifications: an outbox per recipient, delivered in-app, over SSE, by email and push."""
