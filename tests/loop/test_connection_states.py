"""The connection state table (Connection.enter's STATE_EXITS, loop/connection.pxi).

The table is the diagram in _loop.pxd's header, written as data; this test writes
the diagram out once more, move by move with the reason for each, so that a change
to either is a change to both. Behaviour along every move is driven over sockets in
the other tests of this directory: a move the table does not allow fails its
connection there ("Error serving connection").
"""
from __future__ import annotations

from fastwsgi._loop import state_exits

DIAGRAM = {
    # accepted, or taken in from a sibling worker
    "NEW": {"HANDSHAKE", "HEAD"},
    # done; a refused PROXY header answered in plain HTTP; plain HTTP on the TLS port
    # answered, then closed gracefully; a failed or late handshake
    "HANDSHAKE": {"HEAD", "RESPONSE", "CLOSING", "CLOSED"},
    # head parsed; refused (4xx, 408); peer gone
    "HEAD": {"BODY", "RESPONSE", "CLOSED"},
    # the next request's first byte; keep-alive over
    "IDLE": {"HEAD", "CLOSED"},
    # body complete: the app on a pool thread, or on the loop; refused; peer gone
    "BODY": {"APP", "RESPONSE", "CLOSED"},
    # the thread is done; peer gone
    "APP": {"RESPONSE", "CLOSED"},
    # sent, keep-alive, bytes waiting or not; sent, not keep-alive; peer gone
    "RESPONSE": {"HEAD", "IDLE", "CLOSING", "CLOSED"},
    "CLOSING": {"CLOSED"},
    "CLOSED": set(),
}


def test_the_table_is_the_diagram():
    assert state_exits() == {state: frozenset(exits) for state, exits in DIAGRAM.items()}


def test_no_state_returns_to_new_and_closed_is_final():
    exits = state_exits()
    assert not any("NEW" in targets for targets in exits.values())
    assert exits["CLOSED"] == frozenset()
    assert all("CLOSED" in targets for state, targets in exits.items() if state not in ("NEW", "CLOSED"))
