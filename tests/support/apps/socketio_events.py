"""A Flask-SocketIO app as its documentation writes one, in the threading mode that
serves websockets from a threaded WSGI server (simple-websocket takes the connection
from environ["gunicorn.socket"])."""
import os

from flask import Flask
from flask_socketio import SocketIO, emit

app = Flask(__name__)
socketio = SocketIO(app, async_mode="threading")


@app.route("/hello")
def hello():
    return f"hello from {os.getpid()}"


@socketio.on("test_event")
def test_event(message):
    emit("test_reply", {"data": message["data"], "count": message["count"] + 1})
