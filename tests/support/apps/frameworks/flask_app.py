"""A small real Flask app, behind werkzeug's ProxyFix, for the framework tests."""
from flask import Flask, jsonify, request
from werkzeug.middleware.proxy_fix import ProxyFix

app = Flask(__name__)


@app.get("/hello/<name>")
def hello(name):
    return f"Hello, {name}!"


@app.post("/json")
def echo_json():
    return jsonify(received=request.get_json(), length=request.content_length)


@app.get("/whoami")
def whoami():
    return jsonify(remote_addr=request.remote_addr, scheme=request.scheme, host=request.host)


@app.get("/stream")
def stream():
    def generate():
        for i in range(3):
            yield f"part{i};"
    return app.response_class(generate(), mimetype="text/plain")


proxied = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
