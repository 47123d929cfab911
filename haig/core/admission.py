"""Admission as an explicit state table (h11's _state.py style: transitions are data).

Each side of an association is in one admission state; `TABLE[role][state]` lists the
message types legal in it and the state each leads to when the message checks out.
Anything else is illegal: `Admission.receive()` raises IllegalMessage and leaves the
state as it was, and the caller counts the message and never acts on it (no DATA or
PATH before WELCOME; a REFUSED only as the answer to our HELLO).
"""

from __future__ import annotations

from enum import StrEnum

from haig.core import wire


class Adm(StrEnum):
    AWAIT_CHALLENGE = "await_challenge"  # gateway: SCTP up, the endpoint speaks first
    HELLO_SENT = "hello_sent"  # gateway: HELLO out, waiting for WELCOME / REFUSED
    AWAIT_HELLO = "await_hello"  # endpoint: CHALLENGE out
    ADMITTED = "admitted"  # both: traffic may flow
    CLOSED = "closed"  # refused, timed out or lost: nothing more is accepted


GATEWAY, ENDPOINT = "gateway", "endpoint"

TABLE: dict[str, dict[Adm, dict[int, Adm]]] = {
    GATEWAY: {
        Adm.AWAIT_CHALLENGE: {wire.CHALLENGE: Adm.HELLO_SENT},
        Adm.HELLO_SENT: {wire.WELCOME: Adm.ADMITTED, wire.REFUSED: Adm.CLOSED},
        Adm.ADMITTED: {wire.DATA: Adm.ADMITTED},
        Adm.CLOSED: {},
    },
    ENDPOINT: {
        Adm.AWAIT_HELLO: {wire.HELLO: Adm.ADMITTED},
        Adm.ADMITTED: {wire.DATA: Adm.ADMITTED, wire.PATH: Adm.ADMITTED, wire.CLOSE: Adm.ADMITTED},
        Adm.CLOSED: {},
    },
}
INITIAL = {GATEWAY: Adm.AWAIT_CHALLENGE, ENDPOINT: Adm.AWAIT_HELLO}


class IllegalMessage(Exception):
    def __init__(self, state: Adm, msg_type: int) -> None:
        super().__init__(f"message type {msg_type} is not allowed in state {state}")
        self.state, self.msg_type = state, msg_type


class Admission:
    def __init__(self, role: str) -> None:
        self.role = role
        self._table = TABLE[role]
        self.state = INITIAL[role]
        self.illegal = 0  # messages refused by the table (the relay also counts them as drops)

    def receive(self, msg_type: int) -> Adm:
        """The state `msg_type` leads to if it checks out; IllegalMessage if it may not
        arrive now. The state does not change here: call `to()` once it checked out."""
        nxt = self._table[self.state].get(msg_type)
        if nxt is None:
            self.illegal += 1
            raise IllegalMessage(self.state, msg_type)
        return nxt

    def to(self, state: Adm) -> None:
        self.state = state

    @property
    def admitted(self) -> bool:
        return self.state is Adm.ADMITTED
