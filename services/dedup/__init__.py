"""Dedup: copies and rewrites of one story, in a stream, with recoverable state."""
