"""A service idling in a Python loop (tests/agent.rs): its main thread polls for a file that
never appears (`while not os.path.exists(...)`, a Python call each 0.2 ms turn), the cost the
shared probe puts on an idle 3.11 service. A line "N" on stdin makes it call
agent_idle_handle() N times in its stdin thread and answer {"calls": N}."""
import json
import os
import sys
import threading
import time


def agent_idle_handle():
    return 1


def serve():
    for line in sys.stdin:
        n = int(line)
        for _ in range(n):
            agent_idle_handle()
        print(json.dumps({"calls": n}), flush=True)
    os._exit(0)


threading.Thread(target=serve, daemon=True).start()
print("ready", flush=True)
while not os.path.exists("/nonexistent/pyprobe-idle-service"):
    time.sleep(0.0002)
