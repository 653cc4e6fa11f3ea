/* A UDP echo server on WSARecvMsg / WSASendMsg with IP_PKTINFO: each
 * datagram is received with its control data (the address it was sent to
 * and the interface it came in on, an IN_PKTINFO read with the WSA_CMSG_*
 * macros), and answered from that very address (an IN_PKTINFO in the
 * reply's control data) with "<address> <ifindex> <payload>". The first
 * datagram is received with a control buffer too small for its
 * IN_PKTINFO, which must end with MSG_CTRUNC (WSAEMSGSIZE) and is
 * answered "ctrunc".
 *
 * usage: udp_pktinfo_server <port> [datagrams]
 */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>
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
    SOCKET s;
    SOCKADDR_IN addr;
    int len = sizeof(addr), wanted, i;
    DWORD on = 1, n = 0;
    GUID recvmsg_id = WSAID_WSARECVMSG;
    LPFN_WSARECVMSG pWSARecvMsg = NULL;
    WSAEVENT ev;

    if (argc < 2) {
        fprintf(stderr, "usage: %s <port> [datagrams]\n", argv[0]);
        return 2;
    }
    wanted = argc > 2 ? atoi(argv[2]) : -1;
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
        die("WSAStartup");
    s = WSASocket(AF_INET, SOCK_DGRAM, IPPROTO_UDP, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (s == INVALID_SOCKET)
        die("WSASocket");
    if (setsockopt(s, IPPROTO_IP, IP_PKTINFO, (char *)&on, sizeof(on)) == SOCKET_ERROR)
        die("setsockopt(IP_PKTINFO)");
    ZeroMemory(&addr, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((u_short)atoi(argv[1]));
    if (bind(s, (SOCKADDR *)&addr, sizeof(addr)) == SOCKET_ERROR ||
        getsockname(s, (SOCKADDR *)&addr, &len) == SOCKET_ERROR)
        die("bind");
    if (WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &recvmsg_id, sizeof(recvmsg_id),
                 &pWSARecvMsg, sizeof(pWSARecvMsg), &n, NULL, NULL) == SOCKET_ERROR)
        die("WSAIoctl(WSAID_WSARECVMSG)");
    ev = WSACreateEvent();
    printf("listening on port %u\n", ntohs(addr.sin_port));
    fflush(stdout);

    for (i = 0; wanted < 0 || i < wanted; i++) {
        char data[1500], reply[1600], text[INET_ADDRSTRLEN];
        /* Aligned for WSACMSGHDR, as Windows programs keep it. */
        union {
            WSACMSGHDR align;
            char bytes[WSA_CMSG_SPACE(sizeof(IN_PKTINFO)) + 64];
        } control, out_control;
        SOCKADDR_IN from;
        WSABUF buf = {sizeof(data) - 1, data}, rbuf;
        WSAMSG msg, out;
        WSAOVERLAPPED ov;
        WSACMSGHDR *c;
        IN_PKTINFO *info = NULL;
        DWORD got = 0, flags = 0, sent = 0;
        int rc, err = 0;

        ZeroMemory(&msg, sizeof(msg));
        msg.name = (LPSOCKADDR)&from;
        msg.namelen = sizeof(from);
        msg.lpBuffers = &buf;
        msg.dwBufferCount = 1;
        msg.Control.buf = control.bytes;
        /* The first receive: room for a header but not the IN_PKTINFO. */
        msg.Control.len = i == 0 ? (ULONG)sizeof(WSACMSGHDR) : (ULONG)sizeof(control.bytes);
        ZeroMemory(&ov, sizeof(ov));
        ov.hEvent = ev;
        rc = pWSARecvMsg(s, &msg, &got, &ov, NULL);
        if (rc == SOCKET_ERROR && WSAGetLastError() != WSA_IO_PENDING) {
            err = WSAGetLastError();
        } else {
            if (WSAWaitForMultipleEvents(1, &ev, TRUE, 20000, FALSE) != WSA_WAIT_EVENT_0)
                die("WSAWaitForMultipleEvents");
            if (!WSAGetOverlappedResult(s, &ov, &got, FALSE, &flags))
                err = WSAGetLastError();
        }
        data[got] = 0;
        if (i == 0) {
            if (err != WSAEMSGSIZE || !(msg.dwFlags & MSG_CTRUNC)) {
                fprintf(stderr, "a short control buffer: error %d, flags %#lx\n", err,
                        (unsigned long)msg.dwFlags);
                return 1;
            }
            strcpy(reply, "ctrunc");
        } else {
            if (err != 0) {
                fprintf(stderr, "WSARecvMsg: error %d\n", err);
                return 1;
            }
            for (c = WSA_CMSG_FIRSTHDR(&msg); c != NULL; c = WSA_CMSG_NXTHDR(&msg, c))
                if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO)
                    info = (IN_PKTINFO *)WSA_CMSG_DATA(c);
            if (info == NULL) {
                fprintf(stderr, "no IN_PKTINFO (control %lu bytes)\n",
                        (unsigned long)msg.Control.len);
                return 1;
            }
            inet_ntop(AF_INET, &info->ipi_addr, text, sizeof(text));
            snprintf(reply, sizeof(reply), "%s %lu %s", text, (unsigned long)info->ipi_ifindex,
                     data);
        }

        /* The reply, from the address the datagram came to. */
        rbuf.buf = reply;
        rbuf.len = (ULONG)strlen(reply);
        ZeroMemory(&out, sizeof(out));
        ZeroMemory(&out_control, sizeof(out_control));
        out.name = (LPSOCKADDR)&from;
        out.namelen = msg.namelen;
        out.lpBuffers = &rbuf;
        out.dwBufferCount = 1;
        if (info != NULL) {
            WSACMSGHDR *h = (WSACMSGHDR *)out_control.bytes;
            IN_PKTINFO src;
            ZeroMemory(&src, sizeof(src));
            src.ipi_addr = info->ipi_addr;
            h->cmsg_len = WSA_CMSG_LEN(sizeof(IN_PKTINFO));
            h->cmsg_level = IPPROTO_IP;
            h->cmsg_type = IP_PKTINFO;
            memcpy(WSA_CMSG_DATA(h), &src, sizeof(src));
            out.Control.buf = out_control.bytes;
            out.Control.len = (ULONG)WSA_CMSG_SPACE(sizeof(IN_PKTINFO));
        }
        ZeroMemory(&ov, sizeof(ov));
        ov.hEvent = ev;
        rc = WSASendMsg(s, &out, 0, &sent, &ov, NULL);
        if (rc == SOCKET_ERROR && WSAGetLastError() != WSA_IO_PENDING)
            die("WSASendMsg");
        if (!WSAGetOverlappedResult(s, &ov, &sent, TRUE, &flags))
            die("WSASendMsg's result");
        printf("%s\n", reply);
        fflush(stdout);
    }
    WSACloseEvent(ev);
    closesocket(s);
    WSACleanup();
    return 0;
}
