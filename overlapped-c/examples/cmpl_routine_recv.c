/* Receive with a completion routine: accepts one connection and receives
 * a NUL-terminated message with WSARecv and a completion routine, which
 * runs while this thread waits alertably.
 *
 * usage: cmpl_routine_recv <port>     (port 0: any; the port is printed)
 */
#include <winsock2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_SIZE 1024

static char msg[BUF_SIZE];
static DWORD total;
static int finished;

static void die(const char *what)
{
    fprintf(stderr, "%s failed: error %d\n", what, WSAGetLastError());
    exit(1);
}

static void CALLBACK on_recv(DWORD error, DWORD bytes, LPWSAOVERLAPPED ov, DWORD flags)
{
    (void)ov;
    (void)flags;
    if (error != 0) {
        fprintf(stderr, "receive failed: error %lu\n", (unsigned long)error);
        exit(1);
    }
    total += bytes;
    if (bytes == 0 || msg[total - 1] == '\0' || total == sizeof(msg))
        finished = 1;
}

int main(int argc, char *argv[])
{
    WSADATA wsa;
    SOCKET lsn, sock;
    SOCKADDR_IN addr, peer;
    int len = sizeof(addr);
    DWORD got = 0, flags, idx;
    WSABUF buf;
    WSAEVENT ev;
    WSAOVERLAPPED ov;

    if (argc != 2) {
        fprintf(stderr, "usage: %s <port>\n", argv[0]);
        return 2;
    }
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
        die("WSAStartup");
    lsn = WSASocket(PF_INET, SOCK_STREAM, 0, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (lsn == INVALID_SOCKET)
        die("WSASocket");
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

    len = sizeof(peer);
    sock = accept(lsn, (SOCKADDR *)&peer, &len);
    if (sock == INVALID_SOCKET)
        die("accept");

    /* Nothing ever sets this event: the wait only serves to be alertable. */
    ev = WSACreateEvent();
    while (!finished) {
        memset(&ov, 0, sizeof(ov));
        buf.buf = msg + total;
        buf.len = (ULONG)(sizeof(msg) - total);
        flags = 0;
        if (WSARecv(sock, &buf, 1, &got, &flags, &ov, on_recv) == SOCKET_ERROR) {
            if (WSAGetLastError() != WSA_IO_PENDING)
                die("WSARecv");
            puts("Background data receive");
        }
        /* Completed at once or not, the routine reports it. */
        idx = WSAWaitForMultipleEvents(1, &ev, FALSE, WSA_INFINITE, TRUE);
        if (idx == WAIT_IO_COMPLETION)
            puts("Overlapped I/O Completed");
        else
            die("WSAWaitForMultipleEvents");
    }
    msg[sizeof(msg) - 1] = '\0';
    if (total > 0 && msg[total - 1] != '\0')
        msg[total < sizeof(msg) ? total : sizeof(msg) - 1] = '\0';
    printf("Received message: %s\n", msg);

    WSACloseEvent(ev);
    closesocket(sock);
    closesocket(lsn);
    WSACleanup();
    return 0;
}
