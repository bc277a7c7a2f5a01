"""The ``graph`` transport the registry loads: the messages (bot/transports/graph/messages.py)
and the meetings (bot/transports/graph/meetings.py) of one Graph session."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bot.transports.calendar import CalendarTransport
from bot.transports.graph.doctor import doctor
from bot.transports.graph.meetings import GraphMeetings
from bot.transports.graph.messages import GraphMessages
from bot.transports.graph.session import BATCH, Graph


class GraphTransport(GraphMessages, GraphMeetings, CalendarTransport):
    """Messages through ``sendMail``; meetings as events in the organiser's calendar."""

    name = "graph"
    batch = BATCH  # sendMail requests in one $batch

    def __init__(self, options: dict[str, Any], http: Any = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(options)
        self.graph = Graph(options, http, sleep)

    def __repr__(self) -> str:
        return f"<GraphTransport {self.graph.mailbox}>"

    def describe(self) -> str:
        return f"graph {self.graph.mailbox}"

    def doctor(self) -> list[tuple[bool, str, str]]:
        return doctor(self.graph, self.options)

    def close(self) -> None:
        pass  # the httpx client keeps its connections for the next tick
