"""Push delivery of alerts to devices: subscriptions, the outbox, the worker and the transports."""
