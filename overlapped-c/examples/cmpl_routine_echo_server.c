/* The completion-routine echo server: one thread serves every client.
 * The listening socket is non-blocking; between accepts the thread sleeps
 * alertably, which runs the completion routines. Each client's receive
 * routine starts the echo send, whose routine starts the next receive.
 * The per-client state travels in OVERLAPPED.hEvent, which is the
 * program's own value when a completion routine is given.
 *
 * usage: cmpl_routine_echo_server <port> [clients]
 *   port 0: any (the port is printed); with clients, exits once that many
 *   clients have come and gone.
 */
#include <winsock2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_SIZE 1024

typedef struct {
    SOCKET sock;
    char buf[BUF_SIZE];
    WSABUF wsabuf;
} CLIENT;

static int gone;

static void CALLBACK on_read(DWORD error, DWORD bytes, LPWSAOVERLAPPED ov, DWORD flags);
static void CALLBACK on_write(DWORD error, DWORD bytes, LPWSAOVERLAPPED ov, DWORD flags);

static void die(const char *what)
{
    fprintf(stderr, "%s failed: error %d\n", what, WSAGetLastError());
    exit(1);
}

static void drop_client(LPWSAOVERLAPPED ov)
{
    CLIENT *c = (CLIENT *)ov->hEvent;
    closesocket(c->sock);
    free(c);
    free(ov);
    gone++;
    puts("client disconnected");
    fflush(stdout);
}

static void post_read(LPWSAOVERLAPPED ov)
{
    CLIENT *c = (CLIENT *)ov->hEvent;
    DWORD got = 0, flags = 0;
    c->wsabuf.buf = c->buf;
    c->wsabuf.len = BUF_SIZE;
    if (WSARecv(c->sock, &c->wsabuf, 1, &got, &flags, ov, on_read) == SOCKET_ERROR &&
        WSAGetLastError() != WSA_IO_PENDING) {
        fprintf(stderr, "WSARecv failed: error %d\n", WSAGetLastError());
        drop_client(ov);
    }
}

static void CALLBACK on_read(DWORD error, DWORD bytes, LPWSAOVERLAPPED ov, DWORD flags)
{
    CLIENT *c = (CLIENT *)ov->hEvent;
    DWORD sent = 0;
    (void)flags;
    if (error != 0 || bytes == 0) {
        drop_client(ov);
        return;
    }
    c->wsabuf.len = bytes;
    if (WSASend(c->sock, &c->wsabuf, 1, &sent, 0, ov, on_write) == SOCKET_ERROR &&
        WSAGetLastError() != WSA_IO_PENDING) {
        fprintf(stderr, "WSASend failed: error %d\n", WSAGetLastError());
        drop_client(ov);
    }
}

static void CALLBACK on_write(DWORD error, DWORD bytes, LPWSAOVERLAPPED ov, DWORD flags)
{
    (void)bytes;
    (void)flags;
    if (error != 0) {
        drop_client(ov);
        return;
    }
    post_read(ov);
}

int main(int argc, char *argv[])
{
    WSADATA wsa;
    SOCKET lsn, sock;
    SOCKADDR_IN addr, peer;
    int len = sizeof(addr), clients = 0, limit;
    u_long nonblocking = 1;

    if (argc < 2) {
        fprintf(stderr, "usage: %s <port> [clients]\n", argv[0]);
        return 2;
    }
    limit = argc > 2 ? atoi(argv[2]) : 0;
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
        die("WSAStartup");
    lsn = WSASocket(PF_INET, SOCK_STREAM, 0, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (lsn == INVALID_SOCKET)
        die("WSASocket");
    if (ioctlsocket(lsn, FIONBIO, &nonblocking) == SOCKET_ERROR)
        die("ioctlsocket");
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((unsigned short)atoi(argv[1]));
    if (bind(lsn, (SOCKADDR *)&addr, sizeof(addr)) == SOCKET_ERROR)
        die("bind");
    if (listen(lsn, 5) == SOCKET_ERROR)
        die("listen");
    if (getsockname(lsn, (SOCKADDR *)&addr, &len) == SOCKET_ERROR)
        die("getsockname");
    printf("listening on port %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    while (limit == 0 || gone < limit) {
        LPWSAOVERLAPPED ov;
        CLIENT *c;

        /* The routines of this thread run here. */
        SleepEx(100, TRUE);
        if (limit != 0 && clients == limit)
            continue;
        len = sizeof(peer);
        sock = accept(lsn, (SOCKADDR *)&peer, &len);
        if (sock == INVALID_SOCKET) {
            if (WSAGetLastError() == WSAEWOULDBLOCK)
                continue;
            die("accept");
        }
        clients++;
        puts("client connected");
        fflush(stdout);
        c = malloc(sizeof(*c));
        ov = malloc(sizeof(*ov));
        if (c == NULL || ov == NULL)
            die("malloc");
        memset(ov, 0, sizeof(*ov));
        c->sock = sock;
        ov->hEvent = (HANDLE)c;
        post_read(ov);
    }
    closesocket(lsn);
    WSACleanup();
    return 0;
}
