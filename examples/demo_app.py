"""A small stand-in for a Python service: requests go through handlers, some of which are slow.
Runs until killed; pyprobe's demo attaches to it by PID."""
import json
import random
import time

random.seed(7)


class Request:
    def __init__(self, path, body):
        self.path = path
        self.body = body
        self.context = {"request": self}  # a reference cycle: only the GC frees it


class Response:
    def __init__(self, status, payload):
        self.status = status
        self.payload = payload


def parse(raw):
    return Request(raw["path"], json.loads(raw["body"]))


def validate(req):
    return isinstance(req.body, dict)


def query_database(key):
    time.sleep(0.002)  # the slow dependency an on-call engineer is looking for
    return {"key": key, "value": len(key)}


def handle_user(req):
    return Response(200, query_database(req.body["user"]))


def handle_health(req):
    return Response(200, {"ok": True})


def render(resp):
    return json.dumps(resp.payload)


ROUTES = {"/user": handle_user, "/health": handle_health}


def serve_one(raw):
    req = parse(raw)
    if not validate(req):
        return render(Response(400, {}))
    return render(ROUTES[req.path](req))


def main():
    while True:
        path = "/user" if random.random() < 0.2 else "/health"
        serve_one({"path": path, "body": json.dumps({"user": f"u{random.randint(1, 99)}"})})
        time.sleep(0.0005)


if __name__ == "__main__":
    main()
