"""The control socket's wire format, gunicorn 27's (``gunicorn/ctl/protocol.py``), so
that ``gunicornc`` and ``fastwsgic`` talk to either server.

Every message is a 4-byte big-endian length, then that many bytes of UTF-8 JSON:

    request   {"id": 1, "command": "worker add", "args": ["2"]}
    answer    {"id": 1, "status": "ok", "data": {...}}
              {"id": 1, "status": "error", "error": "Invalid argument: ..."}

The server side is ``control.py`` (non-blocking, in the master's loop); this module
holds the framing both sides share and the client's blocking read.
"""
from __future__ import annotations

import json
import socket
import struct
from typing import Any

LENGTH = struct.Struct(">I")
# An answer may be as large as gunicorn lets one be (16 MiB); a request to the master
# is a command line, so the master reads at most this much of one (control.py).
MAX_ANSWER_SIZE = 16 * 1024 * 1024
MAX_REQUEST_SIZE = 64 * 1024


class ProtocolError(Exception):
    """The peer sent what is not a length-prefixed JSON object."""


def encode(message: dict) -> bytes:
    payload = json.dumps(message).encode("utf-8")
    return LENGTH.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> Any:
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        # RecursionError: arrays nested thousands deep, which json.loads cannot parse.
        raise ProtocolError(f"Invalid JSON: {e}") from None


def request(request_id: int, command: str, args: list | None = None) -> dict:
    return {"id": request_id, "command": command, "args": list(args or [])}


def answer(request_id: Any, data: dict) -> dict:
    return {"id": request_id, "status": "ok", "data": data}


def error(request_id: Any, message: str) -> dict:
    return {"id": request_id, "status": "error", "error": message}


def read_message(sock: socket.socket) -> Any:
    """One whole message from a blocking socket (the client's side)."""
    length = LENGTH.unpack(_read_exactly(sock, LENGTH.size, "the length"))[0]
    if length > MAX_ANSWER_SIZE:
        raise ProtocolError(f"Message too large: {length}")
    return decode_payload(_read_exactly(sock, length, "the payload"))


def _read_exactly(sock: socket.socket, size: int, what: str) -> bytes:
    received = bytearray()
    while len(received) < size:
        chunk = sock.recv(min(size - len(received), 65536))
        if not chunk:
            if not received and what == "the length":
                raise ConnectionError("Connection closed")
            raise ProtocolError(f"Connection closed inside {what}")
        received += chunk
    return bytes(received)
