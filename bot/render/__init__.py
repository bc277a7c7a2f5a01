"""Rendering: jinja2 templates, iTIP calendars, the Word agenda and MIME messages. Imports
transports' message type and domain; never planning."""
