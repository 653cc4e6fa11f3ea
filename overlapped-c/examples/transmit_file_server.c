/* A tiny HTTP/1.0 file server on TransmitFile: one file, opened with
 * CreateFile(FILE_FLAG_OVERLAPPED); each request gets the response header
 * as TransmitFile's head buffer, the file's bytes from the offset the
 * request asks for ("GET /?offset=N": OVERLAPPED.Offset), and a tail
 * buffer when the request asks for one ("&tail=1"), all as one overlapped
 * operation with TF_DISCONNECT, reported by the OVERLAPPED's event.
 *
 * usage: transmit_file_server <port> <file> [requests]
 */
#include <winsock2.h>
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

/* Reads the request up to its blank line. */
static int read_request(SOCKET s, char *req, int room)
{
    int got = 0;
    while (got < room - 1) {
        int n = recv(s, req + got, room - 1 - got, 0);
        if (n <= 0)
            return -1;
        got += n;
        req[got] = 0;
        if (strstr(req, "\r\n\r\n") != NULL)
            return got;
    }
    return -1;
}

int main(int argc, char *argv[])
{
    WSADATA wsa;
    SOCKET listener;
    SOCKADDR_IN addr;
    int len = sizeof(addr), served = 0, wanted;
    HANDLE file;
    LARGE_INTEGER size;
    static const char tail[] = "\n-- end of file --\n";

    if (argc < 3) {
        fprintf(stderr, "usage: %s <port> <file> [requests]\n", argv[0]);
        return 2;
    }
    wanted = argc > 3 ? atoi(argv[3]) : -1;
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
        die("WSAStartup");
    file = CreateFile(argv[2], GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                      FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OVERLAPPED, NULL);
    if (file == INVALID_HANDLE_VALUE) {
        fprintf(stderr, "CreateFile(%s) failed: error %lu\n", argv[2],
                (unsigned long)GetLastError());
        return 1;
    }
    if (!GetFileSizeEx(file, &size))
        die("GetFileSizeEx");

    listener = WSASocket(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (listener == INVALID_SOCKET)
        die("WSASocket");
    ZeroMemory(&addr, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((u_short)atoi(argv[1]));
    if (bind(listener, (SOCKADDR *)&addr, sizeof(addr)) == SOCKET_ERROR ||
        listen(listener, SOMAXCONN) == SOCKET_ERROR ||
        getsockname(listener, (SOCKADDR *)&addr, &len) == SOCKET_ERROR)
        die("bind/listen");
    printf("listening on port %u\n", ntohs(addr.sin_port));
    fflush(stdout);

    while (wanted < 0 || served < wanted) {
        char req[2048], head[256];
        const char *q;
        LONGLONG offset = 0;
        int with_tail;
        TRANSMIT_FILE_BUFFERS tfb;
        WSAOVERLAPPED ov;
        DWORD sent = 0, flags = 0;
        SOCKET s = accept(listener, NULL, NULL);
        if (s == INVALID_SOCKET)
            die("accept");
        if (read_request(s, req, sizeof(req)) < 0) {
            closesocket(s);
            continue;
        }
        q = strstr(req, "offset=");
        if (q != NULL)
            offset = atoll(q + 7);
        if (offset > size.QuadPart)
            offset = size.QuadPart;
        with_tail = strstr(req, "tail=1") != NULL;
        snprintf(head, sizeof(head),
                 "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n"
                 "Content-Length: %lld\r\n\r\n",
                 (long long)(size.QuadPart - offset) + (with_tail ? (long long)strlen(tail) : 0));
        tfb.Head = head;
        tfb.HeadLength = (DWORD)strlen(head);
        tfb.Tail = with_tail ? (LPVOID)tail : NULL;
        tfb.TailLength = with_tail ? (DWORD)strlen(tail) : 0;
        ZeroMemory(&ov, sizeof(ov));
        ov.Offset = (DWORD)(offset & 0xFFFFFFFF);
        ov.OffsetHigh = (DWORD)(offset >> 32);
        ov.hEvent = WSACreateEvent();
        if (!TransmitFile(s, file, 0, 0, &ov, &tfb, TF_DISCONNECT) &&
            WSAGetLastError() != WSA_IO_PENDING)
            die("TransmitFile");
        if (WSAWaitForMultipleEvents(1, &ov.hEvent, TRUE, 20000, FALSE) != WSA_WAIT_EVENT_0)
            die("WSAWaitForMultipleEvents");
        if (!WSAGetOverlappedResult(s, &ov, &sent, FALSE, &flags))
            die("WSAGetOverlappedResult");
        printf("sent %lu bytes from offset %lld\n", (unsigned long)sent, (long long)offset);
        fflush(stdout);
        WSACloseEvent(ov.hEvent);
        closesocket(s);
        served++;
    }
    CloseHandle(file);
    closesocket(listener);
    printf("served %d requests\n", served);
    WSACleanup();
    return 0;
}
