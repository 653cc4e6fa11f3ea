/* The IOCP echo server: the main thread accepts; every connection is
 * associated with one completion port under its per-connection data, and
 * a pool of worker threads (one per processor) takes the completions.
 * Each operation's OVERLAPPED is the first member of its per-I/O data, so
 * a worker recovers the whole struct from the LPOVERLAPPED the port
 * returns.
 *
 * usage: iocp_echo_server <port> [clients]
 *   port 0: any (the port is printed); with clients, accepts that many,
 *   and once all have closed stops the workers and exits.
 */
#include <winsock2.h>
#include <windows.h>
#include <process.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_SIZE 4096
#define READ 3
#define WRITE 5
#define MAX_WORKERS 64

typedef struct {
    SOCKET sock;
    SOCKADDR_IN addr;
} PER_HANDLE;

typedef struct {
    OVERLAPPED ov;
    WSABUF wsabuf;
    char buf[BUF_SIZE];
    int mode;
} PER_IO;

static HANDLE port;
static LONG open_clients;
static LONG closed_clients;

static void die(const char *what)
{
    fprintf(stderr, "%s failed: error %d\n", what, WSAGetLastError());
    exit(1);
}

static PER_IO *new_io(int mode)
{
    PER_IO *io = malloc(sizeof(*io));
    if (io == NULL)
        die("malloc");
    memset(&io->ov, 0, sizeof(io->ov));
    io->wsabuf.buf = io->buf;
    io->wsabuf.len = BUF_SIZE;
    io->mode = mode;
    return io;
}

static void close_client(PER_HANDLE *h)
{
    closesocket(h->sock);
    free(h);
    InterlockedIncrement(&closed_clients);
    InterlockedDecrement(&open_clients);
}

static void post_recv(PER_HANDLE *h, PER_IO *io)
{
    DWORD got = 0, flags = 0;
    io->mode = READ;
    io->wsabuf.buf = io->buf;
    io->wsabuf.len = BUF_SIZE;
    memset(&io->ov, 0, sizeof(io->ov));
    if (WSARecv(h->sock, &io->wsabuf, 1, &got, &flags, &io->ov, NULL) == SOCKET_ERROR &&
        WSAGetLastError() != WSA_IO_PENDING) {
        free(io);
        close_client(h);
    }
}

static unsigned WINAPI worker(void *arg)
{
    (void)arg;
    for (;;) {
        DWORD bytes = 0;
        ULONG_PTR key = 0;
        LPOVERLAPPED ov = NULL;
        BOOL ok = GetQueuedCompletionStatus(port, &bytes, &key, &ov, INFINITE);
        PER_HANDLE *h = (PER_HANDLE *)key;
        PER_IO *io;

        if (ov == NULL) {
            if (!ok && GetLastError() != ERROR_ABANDONED_WAIT_0)
                fprintf(stderr, "GetQueuedCompletionStatus failed: error %lu\n",
                        (unsigned long)GetLastError());
            return 0; /* a posted stop packet, or the port is gone */
        }
        io = CONTAINING_RECORD(ov, PER_IO, ov);
        if (io->mode == WRITE) {
            free(io);
            continue;
        }
        if (!ok || bytes == 0) {
            free(io);
            close_client(h);
            continue;
        }
        /* Echo what came, from this buffer, and receive into a new one. */
        io->mode = WRITE;
        io->wsabuf.len = bytes;
        memset(&io->ov, 0, sizeof(io->ov));
        if (WSASend(h->sock, &io->wsabuf, 1, NULL, 0, &io->ov, NULL) == SOCKET_ERROR &&
            WSAGetLastError() != WSA_IO_PENDING) {
            free(io);
            close_client(h);
            continue;
        }
        post_recv(h, new_io(READ));
    }
}

int main(int argc, char *argv[])
{
    WSADATA wsa;
    SYSTEM_INFO si;
    SOCKET lsn;
    SOCKADDR_IN addr;
    HANDLE threads[MAX_WORKERS];
    DWORD i, workers;
    int len = sizeof(addr), limit, accepted = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s <port> [clients]\n", argv[0]);
        return 2;
    }
    limit = argc > 2 ? atoi(argv[2]) : 0;
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
        die("WSAStartup");
    port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);
    if (port == NULL)
        die("CreateIoCompletionPort");
    GetSystemInfo(&si);
    workers = si.dwNumberOfProcessors < MAX_WORKERS ? si.dwNumberOfProcessors : MAX_WORKERS;
    for (i = 0; i < workers; i++) {
        threads[i] = (HANDLE)_beginthreadex(NULL, 0, worker, NULL, 0, NULL);
        if (threads[i] == NULL)
            die("_beginthreadex");
    }

    lsn = WSASocket(AF_INET, SOCK_STREAM, 0, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (lsn == INVALID_SOCKET)
        die("WSASocket");
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
    printf("listening on port %d with %lu workers\n", ntohs(addr.sin_port),
           (unsigned long)workers);
    fflush(stdout);

    while (limit == 0 || accepted < limit) {
        PER_HANDLE *h = malloc(sizeof(*h));
        int alen = sizeof(h->addr);
        if (h == NULL)
            die("malloc");
        h->sock = accept(lsn, (SOCKADDR *)&h->addr, &alen);
        if (h->sock == INVALID_SOCKET)
            die("accept");
        accepted++;
        InterlockedIncrement(&open_clients);
        if (CreateIoCompletionPort((HANDLE)h->sock, port, (ULONG_PTR)h, 0) == NULL)
            die("CreateIoCompletionPort");
        post_recv(h, new_io(READ));
    }

    /* Every client accepted: wait until they have all closed, then stop
     * the workers with one posted packet each. */
    while (InterlockedExchangeAdd(&open_clients, 0) > 0)
        Sleep(10);
    for (i = 0; i < workers; i++)
        PostQueuedCompletionStatus(port, 0, 0, NULL);
    WaitForMultipleObjects(workers, threads, TRUE, INFINITE);
    for (i = 0; i < workers; i++)
        CloseHandle(threads[i]);
    printf("served %ld clients\n", (long)closed_clients);
    CloseHandle(port);
    closesocket(lsn);
    WSACleanup();
    return 0;
}
