/* Overlapped receive with an event: accepts one connection and receives a
 * NUL-terminated message with WSARecv, waiting on the OVERLAPPED's event
 * and taking each result with WSAGetOverlappedResult.
 *
 * usage: overlapped_recv <port>     (port 0: any; the port is printed)
 */
#include <winsock2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_SIZE 1024

static void die(const char *what)
{
    fprintf(stderr, "%s failed: error %d\n", what, WSAGetLastError());
    exit(1);
}

int main(int argc, char *argv[])
{
    WSADATA wsa;
    SOCKET lsn, sock;
    SOCKADDR_IN addr, peer;
    int len = sizeof(addr);
    char msg[BUF_SIZE];
    DWORD got = 0, total = 0, flags;
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

    ev = WSACreateEvent();
    /* Receive until the message's NUL arrived (a stream may deliver it in
     * parts) or the peer closed. */
    while (total == 0 || msg[total - 1] != '\0') {
        if (total == sizeof(msg))
            break;
        memset(&ov, 0, sizeof(ov));
        ov.hEvent = ev;
        buf.buf = msg + total;
        buf.len = (ULONG)(sizeof(msg) - total);
        flags = 0;
        if (WSARecv(sock, &buf, 1, &got, &flags, &ov, NULL) == SOCKET_ERROR) {
            if (WSAGetLastError() != WSA_IO_PENDING)
                die("WSARecv");
            puts("Background data receive");
            WSAWaitForMultipleEvents(1, &ev, TRUE, WSA_INFINITE, FALSE);
        }
        if (!WSAGetOverlappedResult(sock, &ov, &got, FALSE, &flags))
            die("WSAGetOverlappedResult");
        if (got == 0)
            break;
        total += got;
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
