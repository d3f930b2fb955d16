"""Replay and backfill: copy a retained range into a topic, rewind a consumer group."""
