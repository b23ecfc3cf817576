#!/usr/bin/env python3
"""Idle connections against a node's cluster port (issue 9, finding 4).

Starts `flow node` (optionally under `ulimit -n LIMIT`), opens N TCP connections to its
cluster port that never send a byte (one after another), and prints the node's descriptors and
RSS before, 0.5 s after and 7 s after (past the default 5 s handshake deadline), how many
of the connections the node closed, its handshake counters and how many log lines it wrote
(default log filter).

    python3 docs/bench/idle_connections.py target/release/flow 500
    python3 docs/bench/idle_connections.py target/release/flow 400 256
"""
import json, os, socket, subprocess, sys, time

flow, n = sys.argv[1], int(sys.argv[2])
limit = sys.argv[3] if len(sys.argv) > 3 else None
cmd = [flow, "node", "--name", "idle", "--listen", "127.0.0.1:0", "--control"]
if limit:
    cmd = ["sh", "-c", f'ulimit -n {limit} && exec "$0" "$@"'] + cmd
env = {k: v for k, v in os.environ.items() if k != "FLOW_LOG"}
env["RUST_BACKTRACE"] = "0"
err = open("/tmp/idle_connections.log", "w")
node = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env)
host, port = json.loads(node.stdout.readline().decode().split(" ", 1)[1])["listen"].rsplit(":", 1)


def usage():
    fds = len(os.listdir(f"/proc/{node.pid}/fd"))
    rss = next(l for l in open(f"/proc/{node.pid}/status") if l.startswith("VmRSS")).split()[1]
    return f"{fds} fds, {int(rss) / 1024:.1f} MB RSS"


def closed_by_node(conns):
    closed = 0
    for c in conns:
        c.setblocking(False)
        try:
            closed += c.recv(1) == b""
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


time.sleep(1)
print("before:", usage())
conns = []
for _ in range(n):
    c = socket.socket()
    c.settimeout(5)
    try:
        c.connect((host, int(port)))
        conns.append(c)
    except OSError:
        pass
opened = time.time()
print(f"opened {len(conns)} idle connections")
for t in (0.5, 7):
    time.sleep(max(0, opened + t - time.time()))
    print(f"+{t} s:", usage(), f"closed by the node: {closed_by_node(conns)}")
node.stdin.write(b"status\n")
node.stdin.flush()
for line in node.stdout:
    if line.startswith(b"STATUS"):
        counters = dict(json.loads(line[7:])["counters"])
        keys = ("handshake_timeouts", "handshakes_rejected", "handshakes_pending", "accept_errors")
        print({k: counters.get(k) for k in keys})
        break
node.kill()
node.wait()
print("log lines:", sum(1 for _ in open("/tmp/idle_connections.log")))
