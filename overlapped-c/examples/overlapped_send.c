/* Overlapped send: connects, sends one message with WSASend on an
 * OVERLAPPED whose event reports the completion, and waits for the event
 * when the send is still in flight.
 *
 * usage: overlapped_send <ip> <port> [message]
 */
#include <winsock2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what)
{
    fprintf(stderr, "%s failed: error %d\n", what, WSAGetLastError());
    exit(1);
}

int main(int argc, char *argv[])
{
    WSADATA wsa;
    SOCKET sock;
    SOCKADDR_IN peer;
    WSABUF buf;
    WSAEVENT ev;
    WSAOVERLAPPED ov;
    DWORD sent = 0, flags = 0;
    char *msg = argc > 3 ? argv[3] : "Network is Computer!";

    if (argc < 3) {
        fprintf(stderr, "usage: %s <ip> <port> [message]\n", argv[0]);
        return 2;
    }
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
        die("WSAStartup");
    sock = WSASocket(PF_INET, SOCK_STREAM, 0, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (sock == INVALID_SOCKET)
        die("WSASocket");

    memset(&peer, 0, sizeof(peer));
    peer.sin_family = AF_INET;
    peer.sin_addr.s_addr = inet_addr(argv[1]);
    peer.sin_port = htons((unsigned short)atoi(argv[2]));
    if (connect(sock, (SOCKADDR *)&peer, sizeof(peer)) == SOCKET_ERROR)
        die("connect");

    ev = WSACreateEvent();
    memset(&ov, 0, sizeof(ov));
    ov.hEvent = ev;
    buf.buf = msg;
    buf.len = (ULONG)strlen(msg) + 1; /* the receiver reads up to the NUL */

    if (WSASend(sock, &buf, 1, &sent, 0, &ov, NULL) == SOCKET_ERROR) {
        if (WSAGetLastError() != WSA_IO_PENDING)
            die("WSASend");
        puts("Background data send");
        WSAWaitForMultipleEvents(1, &ev, TRUE, WSA_INFINITE, FALSE);
        if (!WSAGetOverlappedResult(sock, &ov, &sent, FALSE, &flags))
            die("WSAGetOverlappedResult");
    } else {
        /* Completed at once; the OVERLAPPED says the same. */
        if (!WSAGetOverlappedResult(sock, &ov, &sent, FALSE, &flags))
            die("WSAGetOverlappedResult");
    }
    printf("Send data size: %lu\n", (unsigned long)sent);

    WSACloseEvent(ev);
    closesocket(sock);
    WSACleanup();
    return 0;
}
