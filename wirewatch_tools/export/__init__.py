"""``wirewatch export``: the compacted event view as GDELT 2.0 rows or PLOVER records."""
