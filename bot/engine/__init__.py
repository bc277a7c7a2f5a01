"""Doing: the worker and its clock, the executor (record, claim, send, recover, sync
calendars), the store (rows only), migrations, the inbox that applies answers, simulation.
Imports config, plan, render, listen, transports and domain; never the CLI."""
