"""A Flask app with a Flask-Sock websocket route, as such apps are written: the
websocket library finds the connection's socket in the environ (gunicorn.socket)."""
import os

from flask import Flask
from flask_sock import Sock

app = Flask(__name__)
sock = Sock(app)


@app.route("/hello")
def hello():
    return f"hello from {os.getpid()}"


@sock.route("/echo")
def echo(ws):
    while True:
        message = ws.receive()
        if message == "bye":
            ws.close()
            return
        ws.send(f"echo: {message}")
