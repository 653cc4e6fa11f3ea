"""An echo client for the C servers' tests: connects `clients` times in
turn, sends messages of growing size on each connection and checks that
every byte comes back in order. Exits non-zero on any mismatch."""
import socket
import sys

port = int(sys.argv[1])
clients = int(sys.argv[2])
for c in range(clients):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    for i in range(12):
        msg = bytes((c * 7 + i + k) % 251 for k in range(1 + i * 300))
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            d = s.recv(65536)
            if not d:
                sys.exit(f"client {c}: the server closed after {len(got)} of {len(msg)} bytes")
            got += d
        if got != msg:
            sys.exit(f"client {c}: message {i} came back changed")
    s.close()
print(f"python client: {clients} connections echoed")
