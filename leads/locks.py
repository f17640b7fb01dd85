"""PostgreSQL advisory lock namespaces: the first key of `pg_advisory_xact_lock(int, int)`,
one per kind of lock, so that locks of different kinds never collide."""

# Distribution: offers to one capped subscription take turns, so its cap count is exact.
CAP_LOCK_NAMESPACE = 7271
# Webhook ingest: leads sharing a ZIP code and a phone or email take turns in the duplicate check.
DUPLICATE_LOCK_NAMESPACE = 7272
