/* The stable echo client: sends each line it reads and reads the echo
 * until every byte it sent came back (a stream may return it in parts).
 * Q or q, or the end of input, quits.
 *
 * usage: stable_echo_client <ip> <port>
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
    SOCKET sock;
    SOCKADDR_IN peer;
    char line[BUF_SIZE];

    if (argc != 3) {
        fprintf(stderr, "usage: %s <ip> <port>\n", argv[0]);
        return 2;
    }
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
        die("WSAStartup");
    sock = socket(PF_INET, SOCK_STREAM, 0);
    if (sock == INVALID_SOCKET)
        die("socket");
    memset(&peer, 0, sizeof(peer));
    peer.sin_family = AF_INET;
    peer.sin_addr.s_addr = inet_addr(argv[1]);
    peer.sin_port = htons((unsigned short)atoi(argv[2]));
    if (connect(sock, (SOCKADDR *)&peer, sizeof(peer)) == SOCKET_ERROR)
        die("connect");
    puts("Connected...........");

    for (;;) {
        int len, sent = 0, got = 0, n;

        fputs("Input message(Q to quit): ", stdout);
        fflush(stdout);
        if (fgets(line, BUF_SIZE, stdin) == NULL)
            break;
        if (!strcmp(line, "q\n") || !strcmp(line, "Q\n"))
            break;
        len = (int)strlen(line);
        while (sent < len) {
            n = send(sock, line + sent, len - sent, 0);
            if (n == SOCKET_ERROR)
                die("send");
            sent += n;
        }
        while (got < len) {
            n = recv(sock, line + got, len - got, 0);
            if (n == SOCKET_ERROR)
                die("recv");
            if (n == 0) {
                fprintf(stderr, "the server closed the connection\n");
                exit(1);
            }
            got += n;
        }
        line[got] = '\0';
        printf("Message from server: %s", line);
    }
    closesocket(sock);
    WSACleanup();
    return 0;
}
