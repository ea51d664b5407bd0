"""Notifier service: consumes course events from NATS JetStream (built in the notifier issue)."""
