"""Planning, pure: ``plan(config, facts, now)`` is every message that should exist —
invitations and their updates, requests and chasers, packs, notices, action digests, nudges.
No I/O; imports render (for subjects and template checks), transports' value types and domain."""
