/* The WSAEventSelect echo server: one thread, one event per socket. The
 * listening socket is selected for FD_ACCEPT | FD_CLOSE, each client for
 * FD_READ | FD_WRITE | FD_CLOSE; WSAWaitForMultipleEvents waits on all of
 * them, and WSAEnumNetworkEvents tells what happened to each signalled
 * socket. The sockets are non-blocking (WSAEventSelect makes them so): a
 * client's bytes are echoed with send until it fails with WSAEWOULDBLOCK,
 * and the rest goes when FD_WRITE says there is room again; no recv is
 * made while an echo is unsent, so FD_READ is not re-enabled until then.
 *
 * usage: event_select_server <port> [clients]
 *   port 0: any (the port is printed); with clients, exits once that many
 *   clients have come and gone.
 */
#include <winsock2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_SIZE 4096

typedef struct {
    SOCKET sock;
    char buf[BUF_SIZE];
    int len;     /* bytes of buf still to echo */
    int off;     /* the first of them */
    int closing; /* FD_CLOSE came: close once the echo is out */
} CONN;

static SOCKET socks[WSA_MAXIMUM_WAIT_EVENTS];
static WSAEVENT events[WSA_MAXIMUM_WAIT_EVENTS];
static CONN *conns[WSA_MAXIMUM_WAIT_EVENTS];
static DWORD count;

static void die(const char *what)
{
    fprintf(stderr, "%s failed: error %d\n", what, WSAGetLastError());
    exit(1);
}

static void add(SOCKET s, WSAEVENT ev, CONN *c)
{
    socks[count] = s;
    events[count] = ev;
    conns[count] = c;
    count++;
}

/* Closes slot i and moves the last slot into it. */
static void drop(DWORD i)
{
    closesocket(socks[i]);
    WSACloseEvent(events[i]);
    free(conns[i]);
    count--;
    socks[i] = socks[count];
    events[i] = events[count];
    conns[i] = conns[count];
}

/* Echoes what can go now: sends the unsent bytes, then reads more while
 * everything read is out. Returns -1 when the connection failed. */
static int pump(CONN *c)
{
    for (;;) {
        while (c->len > 0) {
            int n = send(c->sock, c->buf + c->off, c->len, 0);
            if (n == SOCKET_ERROR) {
                /* FD_WRITE comes when there is room again. */
                return WSAGetLastError() == WSAEWOULDBLOCK ? 0 : -1;
            }
            c->off += n;
            c->len -= n;
        }
        {
            int n = recv(c->sock, c->buf, BUF_SIZE, 0);
            if (n == SOCKET_ERROR) {
                /* FD_READ comes when data does. */
                return WSAGetLastError() == WSAEWOULDBLOCK ? 0 : -1;
            }
            if (n == 0)
                return 0; /* the end of the stream: FD_CLOSE tells it */
            c->off = 0;
            c->len = n;
        }
    }
}

int main(int argc, char *argv[])
{
    WSADATA wsa;
    SOCKET lsn;
    WSAEVENT lsn_ev;
    SOCKADDR_IN addr;
    int len = sizeof(addr), accepted = 0, gone = 0, limit;

    if (argc < 2) {
        fprintf(stderr, "usage: %s <port> [clients]\n", argv[0]);
        return 2;
    }
    limit = argc > 2 ? atoi(argv[2]) : 0;
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
        die("WSAStartup");
    lsn = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (lsn == INVALID_SOCKET)
        die("socket");
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((unsigned short)atoi(argv[1]));
    if (bind(lsn, (SOCKADDR *)&addr, sizeof(addr)) == SOCKET_ERROR)
        die("bind");
    if (listen(lsn, SOMAXCONN) == SOCKET_ERROR)
        die("listen");
    if (getsockname(lsn, (SOCKADDR *)&addr, &len) == SOCKET_ERROR)
        die("getsockname");
    lsn_ev = WSACreateEvent();
    if (lsn_ev == WSA_INVALID_EVENT)
        die("WSACreateEvent");
    if (WSAEventSelect(lsn, lsn_ev, FD_ACCEPT | FD_CLOSE) == SOCKET_ERROR)
        die("WSAEventSelect");
    add(lsn, lsn_ev, NULL);
    printf("listening on port %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    while (limit == 0 || gone < limit) {
        DWORD first, i;

        first = WSAWaitForMultipleEvents(count, events, FALSE, WSA_INFINITE, FALSE);
        if (first == WSA_WAIT_FAILED)
            die("WSAWaitForMultipleEvents");
        first -= WSA_WAIT_EVENT_0;
        /* The signalled event of the lowest index, then every later one
           that is signalled too (so no socket starves behind index 0). */
        for (i = first; i < count; i++) {
            WSANETWORKEVENTS ne;
            CONN *c;

            if (i != first &&
                WSAWaitForMultipleEvents(1, &events[i], TRUE, 0, FALSE) != WSA_WAIT_EVENT_0)
                continue;
            if (WSAEnumNetworkEvents(socks[i], events[i], &ne) == SOCKET_ERROR)
                die("WSAEnumNetworkEvents");
            if (i == 0) {
                /* The listener. */
                if (ne.lNetworkEvents & FD_ACCEPT) {
                    SOCKET s;
                    WSAEVENT ev;

                    if (ne.iErrorCode[FD_ACCEPT_BIT] != 0) {
                        fprintf(stderr, "FD_ACCEPT failed: error %d\n",
                                ne.iErrorCode[FD_ACCEPT_BIT]);
                        continue;
                    }
                    s = accept(lsn, NULL, NULL);
                    if (s == INVALID_SOCKET) {
                        if (WSAGetLastError() == WSAEWOULDBLOCK)
                            continue;
                        die("accept");
                    }
                    if (count == WSA_MAXIMUM_WAIT_EVENTS) {
                        fprintf(stderr, "too many clients: one refused\n");
                        closesocket(s);
                        continue;
                    }
                    ev = WSACreateEvent();
                    c = calloc(1, sizeof(*c));
                    if (ev == WSA_INVALID_EVENT || c == NULL)
                        die("WSACreateEvent / calloc");
                    c->sock = s;
                    if (WSAEventSelect(s, ev, FD_READ | FD_WRITE | FD_CLOSE) == SOCKET_ERROR)
                        die("WSAEventSelect");
                    add(s, ev, c);
                    accepted++;
                    puts("client connected");
                    fflush(stdout);
                }
                continue;
            }
            c = conns[i];
            if (ne.lNetworkEvents & FD_CLOSE)
                c->closing = 1;
            if ((ne.lNetworkEvents & FD_READ) && ne.iErrorCode[FD_READ_BIT] != 0)
                c->closing = 1;
            if (pump(c) != 0 || (c->closing && c->len == 0)) {
                drop(i);
                gone++;
                puts("client disconnected");
                fflush(stdout);
                /* Slot i holds the last socket now: look at it too. */
                i--;
            }
        }
    }
    printf("served %d clients\n", accepted);
    closesocket(lsn);
    WSACloseEvent(lsn_ev);
    WSACleanup();
    return 0;
}
