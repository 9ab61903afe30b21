"""Known security-relevant audit events (see tests/audit.rs): a file opened, a subprocess run,
a shell command, a loopback bind and connect, a compile and an exec; waits for stdin first."""
import json
import os
import socket
import subprocess
import sys
import tempfile

known = {}
print("ready", flush=True)
sys.stdin.readline()

fd, path = tempfile.mkstemp(prefix="pyprobe-audit-", suffix=".txt")
os.close(fd)
with open(path, "w") as f:
    f.write("x")
known["path"] = path
uni = path.replace("pyprobe-audit-", "pyprobe-ünï-")
with open(uni, "w") as f:
    f.write("y")
known["non_ascii_path_chars"] = len(uni)

subprocess.run(["/bin/echo", "pyprobe-audit-test", "two"], check=True, stdout=subprocess.DEVNULL)
os.system("true pyprobe-system-test")

server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.bind(("127.0.0.1", 0))
server.listen(1)
port = server.getsockname()[1]
client = socket.create_connection(("127.0.0.1", port))
known["port"] = port
client.close()
server.close()

code = compile("6 * 7", "<pyprobe-compiled>", "eval")
assert eval(code) == 42

os.unlink(path)
os.unlink(uni)
print("known " + json.dumps(known), flush=True)
