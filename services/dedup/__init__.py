"""Dedup: copies of one text, and every report of one happening as one story, in a stream."""
