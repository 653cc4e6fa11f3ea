/* One OVERLAPPED reused at once by whichever worker takes its packet: a
 * chain of receives on a connection whose data is always there, so each
 * receive completes during its start and its packet may reach another
 * worker (which starts the next receive on the same OVERLAPPED) before the
 * first worker's WSARecv has returned. Every byte must arrive once, in
 * order; no start may find the OVERLAPPED busy.
 *
 * usage: port_race [bytes]   (exits 0 when all arrived intact) */
#include <winsock2.h>
#include <windows.h>
#include <process.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKERS 4
#define CHUNK 4096

typedef struct {
    OVERLAPPED ov;
    WSABUF wb;
    char buf[512];
} IO;

static HANDLE port;
static SOCKET rx;
static IO io;
static long total, received;
static volatile LONG failed, finished, busy_errors;

static void post(void)
{
    DWORD flags = 0;
    memset(&io.ov, 0, sizeof(io.ov));
    io.wb.buf = io.buf;
    io.wb.len = sizeof(io.buf);
    if (WSARecv(rx, &io.wb, 1, NULL, &flags, &io.ov, NULL) == SOCKET_ERROR &&
        WSAGetLastError() != WSA_IO_PENDING) {
        if (WSAGetLastError() == WSAEINVAL)
            InterlockedIncrement(&busy_errors);
        fprintf(stderr, "WSARecv failed: %d\n", WSAGetLastError());
        InterlockedExchange(&failed, 1);
        PostQueuedCompletionStatus(port, 0, 0, NULL);
    }
}

static unsigned __stdcall worker(void *arg)
{
    (void)arg;
    for (;;) {
        DWORD n;
        ULONG_PTR key;
        LPOVERLAPPED ov;
        BOOL ok = GetQueuedCompletionStatus(port, &n, &key, &ov, 20000);
        long i;
        if (ov == NULL) {
            if (!ok && GetLastError() == WAIT_TIMEOUT) {
                fprintf(stderr, "no packet for 20 s at %ld of %ld bytes\n", received, total);
                InterlockedExchange(&failed, 1);
            }
            PostQueuedCompletionStatus(port, 0, 0, NULL); /* wake the next worker */
            return 0;
        }
        if (ov != &io.ov || key != 7 || !ok || n == 0) {
            fprintf(stderr, "bad packet: ov %p key %lu ok %d n %lu error %lu\n", (void *)ov,
                    (unsigned long)key, ok, (unsigned long)n, (unsigned long)GetLastError());
            InterlockedExchange(&failed, 1);
            PostQueuedCompletionStatus(port, 0, 0, NULL);
            return 0;
        }
        for (i = 0; i < (long)n; i++) {
            if ((unsigned char)io.buf[i] != (unsigned char)((received + i) % 251)) {
                fprintf(stderr, "byte %ld is wrong\n", received + i);
                InterlockedExchange(&failed, 1);
                PostQueuedCompletionStatus(port, 0, 0, NULL);
                return 0;
            }
        }
        received += n;
        if (received == total) {
            InterlockedExchange(&finished, 1);
            PostQueuedCompletionStatus(port, 0, 0, NULL);
            return 0;
        }
        post();
    }
}

int main(int argc, char *argv[])
{
    WSADATA wsa;
    SOCKET l, tx;
    SOCKADDR_IN addr;
    int len = sizeof(addr);
    HANDLE threads[WORKERS];
    char chunk[CHUNK];
    long sent = 0;
    int i;

    total = argc > 1 ? atol(argv[1]) : 2000000;
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
        return 1;
    l = socket(AF_INET, SOCK_STREAM, 0);
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (SOCKADDR *)&addr, sizeof(addr)) || listen(l, 1) ||
        getsockname(l, (SOCKADDR *)&addr, &len))
        return 1;
    tx = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(tx, (SOCKADDR *)&addr, sizeof(addr)))
        return 1;
    rx = accept(l, NULL, NULL);
    if (rx == INVALID_SOCKET)
        return 1;
    port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);
    if (CreateIoCompletionPort((HANDLE)rx, port, 7, 0) != port)
        return 1;
    for (i = 0; i < WORKERS; i++)
        threads[i] = (HANDLE)_beginthreadex(NULL, 0, worker, NULL, 0, NULL);
    post();
    while (sent < total && !failed) {
        int k, n = total - sent < CHUNK ? (int)(total - sent) : CHUNK;
        for (k = 0; k < n; k++)
            chunk[k] = (char)((sent + k) % 251);
        if (send(tx, chunk, n, 0) != n) {
            fprintf(stderr, "send failed: %d\n", WSAGetLastError());
            return 1;
        }
        sent += n;
    }
    WaitForMultipleObjects(WORKERS, threads, TRUE, INFINITE);
    for (i = 0; i < WORKERS; i++)
        CloseHandle(threads[i]);
    closesocket(tx);
    closesocket(rx);
    closesocket(l);
    CloseHandle(port);
    WSACleanup();
    if (failed || !finished || busy_errors) {
        printf("FAILED: %ld of %ld bytes, %ld busy OVERLAPPED errors\n", received, total,
               (long)busy_errors);
        return 1;
    }
    printf("%ld bytes through one reused OVERLAPPED\n", received);
    return 0;
}
