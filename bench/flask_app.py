"""The Flask app of the framework scenarios: a hello view and a JSON view.

An app as Flask's quickstart writes it; `app` is the WSGI callable every server
under test imports (``flask_app:app``).
"""
from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/")
def hello():
    return "Hello, World!"


@app.get("/json")
def json_message():
    return jsonify(message="Hello, World!")
