/* An IOCP echo server built the way production servers are: a pool of
 * accept sockets made up front, each with an AcceptEx pending on the
 * listener (taking the connection's first data with it); one per-I/O
 * context per connection that embeds the OVERLAPPED, recovered with
 * CONTAINING_RECORD from the packet; a worker pool on
 * GetQueuedCompletionStatus echoing with WSARecv / WSASend; and, when a
 * client leaves, DisconnectEx(TF_REUSE_SOCKET) and a new AcceptEx on the
 * same socket. The extension functions come from WSAIoctl.
 *
 * usage: acceptex_server <port> [clients]
 *   port 0: any (the port is printed); with clients, exits once that many
 *   connections have come and gone.
 */
#include <winsock2.h>
#include <mswsock.h>
#include <windows.h>
#include <process.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL 4
#define DATA_SIZE 4096
#define ADDR_SLOT (sizeof(SOCKADDR_IN) + 16)
#define MAX_WORKERS 8
#define EXIT_KEY ((ULONG_PTR)-1)
#define LISTEN_KEY ((ULONG_PTR)0)

enum op { OP_ACCEPT, OP_RECV, OP_SEND, OP_DISCONNECT };

typedef struct conn CONN;

typedef struct {
    OVERLAPPED ov; /* not first on purpose: CONTAINING_RECORD finds it */
    enum op op;
    CONN *conn;
    WSABUF wsabuf;
    DWORD len, sent;
    char buf[DATA_SIZE + 2 * ADDR_SLOT];
} IO_CTX;

struct conn {
    SOCKET s;
    IO_CTX io;
};

static SOCKET listener;
static HANDLE port;
static LPFN_ACCEPTEX pAcceptEx;
static LPFN_GETACCEPTEXSOCKADDRS pGetAcceptExSockaddrs;
static LPFN_DISCONNECTEX pDisconnectEx;
static u_short listen_port;
static LONG served, wanted, bad_addrs, reuses;
static HANDLE all_served;
static CONN pool[POOL];

static void die(const char *what)
{
    fprintf(stderr, "%s failed: error %d\n", what, WSAGetLastError());
    exit(1);
}

static void *extension(GUID id)
{
    void *fn = NULL;
    DWORD n = 0;
    if (WSAIoctl(listener, SIO_GET_EXTENSION_FUNCTION_POINTER, &id, sizeof(id), &fn, sizeof(fn),
                 &n, NULL, NULL) == SOCKET_ERROR)
        die("WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER)");
    return fn;
}

static void new_socket(CONN *c)
{
    c->s = WSASocket(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (c->s == INVALID_SOCKET)
        die("WSASocket");
    if (CreateIoCompletionPort((HANDLE)c->s, port, (ULONG_PTR)c, 0) == NULL)
        die("CreateIoCompletionPort(accept socket)");
}

static void start_accept(CONN *c)
{
    IO_CTX *io = &c->io;
    DWORD n = 0;
    ZeroMemory(&io->ov, sizeof(io->ov));
    io->op = OP_ACCEPT;
    if (!pAcceptEx(listener, c->s, io->buf, DATA_SIZE, ADDR_SLOT, ADDR_SLOT, &n, &io->ov) &&
        WSAGetLastError() != WSA_IO_PENDING)
        die("AcceptEx");
}

static void start_send(CONN *c, DWORD len)
{
    IO_CTX *io = &c->io;
    ZeroMemory(&io->ov, sizeof(io->ov));
    io->op = OP_SEND;
    io->wsabuf.buf = io->buf + io->sent;
    io->wsabuf.len = len - io->sent;
    io->len = len;
    if (WSASend(c->s, &io->wsabuf, 1, NULL, 0, &io->ov, NULL) == SOCKET_ERROR &&
        WSAGetLastError() != WSA_IO_PENDING)
        fprintf(stderr, "WSASend: error %d\n", WSAGetLastError());
}

static void start_recv(CONN *c)
{
    IO_CTX *io = &c->io;
    DWORD flags = 0;
    ZeroMemory(&io->ov, sizeof(io->ov));
    io->op = OP_RECV;
    io->wsabuf.buf = io->buf;
    io->wsabuf.len = DATA_SIZE;
    if (WSARecv(c->s, &io->wsabuf, 1, NULL, &flags, &io->ov, NULL) == SOCKET_ERROR &&
        WSAGetLastError() != WSA_IO_PENDING)
        fprintf(stderr, "WSARecv: error %d\n", WSAGetLastError());
}

static void client_left(CONN *c)
{
    IO_CTX *io = &c->io;
    ZeroMemory(&io->ov, sizeof(io->ov));
    io->op = OP_DISCONNECT;
    if (!pDisconnectEx(c->s, &io->ov, TF_REUSE_SOCKET, 0) &&
        WSAGetLastError() != WSA_IO_PENDING) {
        /* Not connected any more: a new socket instead of the reused one. */
        closesocket(c->s);
        new_socket(c);
        if (InterlockedIncrement(&served) == wanted)
            SetEvent(all_served);
        start_accept(c);
    }
}

static void accepted(CONN *c, DWORD n)
{
    IO_CTX *io = &c->io;
    SOCKADDR *local = NULL, *remote = NULL;
    int local_len = 0, remote_len = 0;
    setsockopt(c->s, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, (char *)&listener, sizeof(listener));
    pGetAcceptExSockaddrs(io->buf, DATA_SIZE, ADDR_SLOT, ADDR_SLOT, &local, &local_len, &remote,
                          &remote_len);
    if (local == NULL || remote == NULL || local_len != sizeof(SOCKADDR_IN) ||
        remote_len != sizeof(SOCKADDR_IN) || local->sa_family != AF_INET ||
        ((SOCKADDR_IN *)local)->sin_port != htons(listen_port) ||
        ((SOCKADDR_IN *)remote)->sin_addr.s_addr != htonl(INADDR_LOOPBACK))
        InterlockedIncrement(&bad_addrs);
    if (n == 0) {
        client_left(c);
        return;
    }
    io->sent = 0;
    start_send(c, n); /* the first data came with the accept */
}

static unsigned __stdcall worker(void *arg)
{
    (void)arg;
    for (;;) {
        DWORD n = 0;
        ULONG_PTR key = 0;
        LPOVERLAPPED ov = NULL;
        BOOL ok = GetQueuedCompletionStatus(port, &n, &key, &ov, INFINITE);
        if (ov == NULL) {
            if (ok && key == EXIT_KEY)
                return 0;
            fprintf(stderr, "GetQueuedCompletionStatus: error %lu\n",
                    (unsigned long)GetLastError());
            return 1;
        }
        IO_CTX *io = CONTAINING_RECORD(ov, IO_CTX, ov);
        CONN *c = io->conn;
        switch (io->op) {
        case OP_ACCEPT:
            if (!ok) {
                fprintf(stderr, "AcceptEx completed with error %lu\n",
                        (unsigned long)GetLastError());
                closesocket(c->s);
                new_socket(c);
                start_accept(c);
            } else {
                accepted(c, n);
            }
            break;
        case OP_SEND:
            if (!ok) {
                client_left(c);
            } else {
                io->sent += n;
                if (io->sent < io->len)
                    start_send(c, io->len);
                else
                    start_recv(c);
            }
            break;
        case OP_RECV:
            if (!ok || n == 0) {
                client_left(c);
            } else {
                io->sent = 0;
                start_send(c, n);
            }
            break;
        case OP_DISCONNECT:
            InterlockedIncrement(&reuses);
            if (InterlockedIncrement(&served) == wanted)
                SetEvent(all_served);
            start_accept(c); /* the same socket, reused */
            break;
        }
    }
}

int main(int argc, char *argv[])
{
    WSADATA wsa;
    SOCKADDR_IN addr;
    int len = sizeof(addr);
    SYSTEM_INFO si;
    HANDLE workers[MAX_WORKERS];
    DWORD nworkers, i;
    GUID acceptex = WSAID_ACCEPTEX, sockaddrs = WSAID_GETACCEPTEXSOCKADDRS,
         disconnectex = WSAID_DISCONNECTEX;

    if (argc < 2) {
        fprintf(stderr, "usage: %s <port> [clients]\n", argv[0]);
        return 2;
    }
    wanted = argc > 2 ? atoi(argv[2]) : -1;
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
        die("WSAStartup");
    all_served = CreateEvent(NULL, TRUE, FALSE, NULL);
    port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);
    if (port == NULL)
        die("CreateIoCompletionPort");

    listener = WSASocket(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (listener == INVALID_SOCKET)
        die("WSASocket");
    ZeroMemory(&addr, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((u_short)atoi(argv[1]));
    if (bind(listener, (SOCKADDR *)&addr, sizeof(addr)) == SOCKET_ERROR)
        die("bind");
    if (listen(listener, SOMAXCONN) == SOCKET_ERROR)
        die("listen");
    if (getsockname(listener, (SOCKADDR *)&addr, &len) == SOCKET_ERROR)
        die("getsockname");
    listen_port = ntohs(addr.sin_port);
    if (CreateIoCompletionPort((HANDLE)listener, port, LISTEN_KEY, 0) == NULL)
        die("CreateIoCompletionPort(listener)");
    pAcceptEx = (LPFN_ACCEPTEX)extension(acceptex);
    pGetAcceptExSockaddrs = (LPFN_GETACCEPTEXSOCKADDRS)extension(sockaddrs);
    pDisconnectEx = (LPFN_DISCONNECTEX)extension(disconnectex);

    GetSystemInfo(&si);
    nworkers = si.dwNumberOfProcessors < 2 ? 2 : si.dwNumberOfProcessors;
    if (nworkers > MAX_WORKERS)
        nworkers = MAX_WORKERS;
    for (i = 0; i < nworkers; i++)
        workers[i] = (HANDLE)_beginthreadex(NULL, 0, worker, NULL, 0, NULL);

    for (i = 0; i < POOL; i++) {
        pool[i].io.conn = &pool[i];
        new_socket(&pool[i]);
        start_accept(&pool[i]);
    }
    printf("listening on port %u\n", listen_port);
    fflush(stdout);

    WaitForSingleObject(all_served, INFINITE);
    for (i = 0; i < nworkers; i++)
        PostQueuedCompletionStatus(port, 0, EXIT_KEY, NULL);
    WaitForMultipleObjects(nworkers, workers, TRUE, INFINITE);
    for (i = 0; i < POOL; i++)
        closesocket(pool[i].s);
    closesocket(listener);
    CloseHandle(port);
    printf("served %ld clients, %ld sockets reused, %ld wrong addresses\n", (long)served,
           (long)reuses, (long)bad_addrs);
    WSACleanup();
    return bad_addrs == 0 ? 0 : 1;
}
