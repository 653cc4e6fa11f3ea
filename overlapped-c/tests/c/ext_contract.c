/* The extension functions' contract: ConnectEx with first data into an
 * AcceptEx that waits for it, both reported through one port with their
 * very LPOVERLAPPEDs; GetAcceptExSockaddrs; AcceptEx with no data room
 * (completes at the accept); DisconnectEx without reuse (the peer reads
 * the end); and the error codes of detectable misuse.
 * Prints one line per check; exits 1 if any failed.
 */
#include <winsock2.h>
#include <mswsock.h>
#include <windows.h>
#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK(cond, what)                                                         \
    do {                                                                          \
        if (cond) {                                                               \
            printf("ok: %s\n", what);                                             \
        } else {                                                                  \
            printf("FAILED: %s (error %d)\n", what, WSAGetLastError());           \
            failures++;                                                           \
        }                                                                         \
    } while (0)

#define SLOT (sizeof(SOCKADDR_IN) + 16)

static DWORD routine_bytes, routine_error = 99;
static LPWSAOVERLAPPED routine_ov;

static void CALLBACK on_msg(DWORD error, DWORD bytes, LPWSAOVERLAPPED ov, DWORD flags)
{
    (void)flags;
    routine_error = error;
    routine_bytes = bytes;
    routine_ov = ov;
}

static void *ext(SOCKET s, GUID id)
{
    void *fn = NULL;
    DWORD n = 0;
    if (WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &id, sizeof(id), &fn, sizeof(fn), &n,
                 NULL, NULL) != 0 ||
        n != sizeof(fn))
        return NULL;
    return fn;
}

static SOCKET tcp(void)
{
    return WSASocket(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
}

int main(void)
{
    WSADATA wsa;
    SOCKET l, a, c, a2, c2;
    SOCKADDR_IN addr, any;
    int len = sizeof(addr);
    HANDLE port;
    GUID g_accept = WSAID_ACCEPTEX, g_addrs = WSAID_GETACCEPTEXSOCKADDRS,
         g_connect = WSAID_CONNECTEX, g_disconnect = WSAID_DISCONNECTEX,
         g_transmit = WSAID_TRANSMITFILE, g_recvmsg = WSAID_WSARECVMSG,
         g_sendmsg = WSAID_WSASENDMSG, g_bogus = {1, 2, 3, {4, 5, 6, 7, 8, 9, 10, 11}};
    LPFN_ACCEPTEX pAcceptEx;
    LPFN_GETACCEPTEXSOCKADDRS pGetAddrs;
    LPFN_CONNECTEX pConnectEx;
    LPFN_DISCONNECTEX pDisconnectEx;
    char abuf[64 + 2 * SLOT], small[64 + 2 * SLOT];
    OVERLAPPED aov, cov, ov3;
    DWORD n = 0;
    void *fn = NULL;

    setvbuf(stdout, NULL, _IOLBF, 0);
    WSAStartup(MAKEWORD(2, 2), &wsa);
    l = tcp();
    ZeroMemory(&addr, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(l, (SOCKADDR *)&addr, sizeof(addr));
    listen(l, 16);
    getsockname(l, (SOCKADDR *)&addr, &len);

    pAcceptEx = (LPFN_ACCEPTEX)ext(l, g_accept);
    pGetAddrs = (LPFN_GETACCEPTEXSOCKADDRS)ext(l, g_addrs);
    pConnectEx = (LPFN_CONNECTEX)ext(l, g_connect);
    pDisconnectEx = (LPFN_DISCONNECTEX)ext(l, g_disconnect);
    CHECK(pAcceptEx == AcceptEx && pGetAddrs == GetAcceptExSockaddrs,
          "WSAIoctl hands out AcceptEx and GetAcceptExSockaddrs (the exported ones)");
    CHECK(pConnectEx != NULL && pDisconnectEx != NULL && ext(l, g_recvmsg) != NULL,
          "WSAIoctl hands out ConnectEx, DisconnectEx, WSARecvMsg");
    CHECK(ext(l, g_transmit) == (void *)TransmitFile && ext(l, g_sendmsg) == (void *)WSASendMsg,
          "WSAIoctl hands out TransmitFile and WSASendMsg");
    CHECK(WSAIoctl(l, SIO_GET_EXTENSION_FUNCTION_POINTER, &g_bogus, sizeof(g_bogus), &fn,
                   sizeof(fn), &n, NULL, NULL) == SOCKET_ERROR &&
              WSAGetLastError() == WSAEINVAL,
          "an unknown GUID: WSAEINVAL");
    CHECK(WSAIoctl(l, SIO_GET_EXTENSION_FUNCTION_POINTER, &g_accept, sizeof(g_accept), &fn, 4,
                   &n, NULL, NULL) == SOCKET_ERROR &&
              WSAGetLastError() == WSAEFAULT,
          "no room for the pointer: WSAEFAULT");

    port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    CreateIoCompletionPort((HANDLE)l, port, 1, 0);

    /* Misuse. */
    a = tcp();
    ZeroMemory(&aov, sizeof(aov));
    CHECK(!pAcceptEx(l, a, small, 0, SLOT - 1, SLOT, &n, &aov) && WSAGetLastError() == WSAEINVAL,
          "AcceptEx with a local slot too small: WSAEINVAL");
    CHECK(!pAcceptEx(l, a, small, 0, SLOT, 8, &n, &aov) && WSAGetLastError() == WSAEINVAL,
          "AcceptEx with a remote slot too small: WSAEINVAL");
    CHECK(!pAcceptEx(l, a, small, 0, SLOT, SLOT, &n, NULL) && WSAGetLastError() == WSAEINVAL,
          "AcceptEx with a NULL OVERLAPPED: WSAEINVAL");
    CHECK(!pAcceptEx(l, a, NULL, 0, SLOT, SLOT, &n, &aov) && WSAGetLastError() == WSAEFAULT,
          "AcceptEx with a NULL buffer: WSAEFAULT");
    CHECK(!pAcceptEx(l, (SOCKET)12345, small, 0, SLOT, SLOT, &n, &aov) &&
              WSAGetLastError() == WSAENOTSOCK,
          "AcceptEx into a SOCKET that is none: WSAENOTSOCK");
    CHECK(!pDisconnectEx(a, NULL, 0x40, 0) && WSAGetLastError() == WSAEINVAL,
          "DisconnectEx with an unknown flag: WSAEINVAL");
    CHECK(!TransmitFile(a, (HANDLE)(ULONG_PTR)12344, 0, 0, NULL, NULL, 0) &&
              WSAGetLastError() == WSAEINVAL,
          "TransmitFile with a file HANDLE that is none: WSAEINVAL");

    /* AcceptEx waiting for first data; ConnectEx sending it. */
    ZeroMemory(&aov, sizeof(aov));
    memset(abuf, 0x5a, sizeof(abuf));
    CHECK(!pAcceptEx(l, a, abuf, 64, SLOT, SLOT, &n, &aov) && WSAGetLastError() == WSA_IO_PENDING,
          "AcceptEx with a data room is pending");
    CHECK(!pAcceptEx(l, a, abuf, 64, SLOT, SLOT, &n, &aov) && WSAGetLastError() == WSAEINVAL,
          "a second AcceptEx on the OVERLAPPED in flight: WSAEINVAL");
    c = tcp();
    ZeroMemory(&any, sizeof(any));
    any.sin_family = AF_INET;
    any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(c, (SOCKADDR *)&any, sizeof(any));
    CreateIoCompletionPort((HANDLE)c, port, 2, 0);
    ZeroMemory(&cov, sizeof(cov));
    {
        BOOL ok = pConnectEx(c, (SOCKADDR *)&addr, sizeof(addr), "first data", 10, &n, &cov);
        CHECK(ok || WSAGetLastError() == WSA_IO_PENDING, "ConnectEx with send data starts");
    }
    {
        int seen = 0, i;
        for (i = 0; i < 2; i++) {
            DWORD bytes = 0;
            ULONG_PTR key = 0;
            LPOVERLAPPED o = NULL;
            BOOL ok = GetQueuedCompletionStatus(port, &bytes, &key, &o, 10000);
            if (ok && o == &aov && key == 1 && bytes == 10)
                seen |= 1;
            else if (ok && o == &cov && key == 2 && bytes == 10)
                seen |= 2;
            else
                printf("unexpected packet: ok %d key %lu bytes %lu\n", ok, (unsigned long)key,
                       (unsigned long)bytes);
        }
        CHECK(seen == 3, "both completions on the port, each with its LPOVERLAPPED and 10 bytes");
    }
    CHECK(memcmp(abuf, "first data", 10) == 0, "the first data is in the AcceptEx buffer");
    CHECK(setsockopt(a, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, (char *)&l, sizeof(l)) == 0 &&
              setsockopt(c, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, NULL, 0) == 0,
          "SO_UPDATE_ACCEPT_CONTEXT / SO_UPDATE_CONNECT_CONTEXT are accepted");
    {
        SOCKADDR *loc = NULL, *rem = NULL;
        int ll = 0, rl = 0;
        SOCKADDR_IN cname;
        int cl = sizeof(cname);
        getsockname(c, (SOCKADDR *)&cname, &cl);
        pGetAddrs(abuf, 64, SLOT, SLOT, &loc, &ll, &rem, &rl);
        CHECK(loc != NULL && rem != NULL && ll == sizeof(SOCKADDR_IN) &&
                  rl == sizeof(SOCKADDR_IN) && (char *)loc > abuf + 64 &&
                  (char *)rem < abuf + sizeof(abuf) &&
                  ((SOCKADDR_IN *)loc)->sin_port == addr.sin_port &&
                  ((SOCKADDR_IN *)rem)->sin_port == cname.sin_port &&
                  ((SOCKADDR_IN *)rem)->sin_addr.s_addr == htonl(INADDR_LOOPBACK),
              "GetAcceptExSockaddrs: the listener's address and the client's, in the buffer");
    }
    {
        char got[16];
        int k = send(a, "back", 4, 0);
        CHECK(k == 4 && recv(c, got, sizeof(got), 0) == 4 && memcmp(got, "back", 4) == 0,
              "the accepted socket is connected to the ConnectEx one");
    }

    /* DisconnectEx without reuse: the peer reads the end. */
    ZeroMemory(&ov3, sizeof(ov3));
    ov3.hEvent = (HANDLE)((ULONG_PTR)WSACreateEvent() | 1); /* the event, no packet */
    {
        BOOL ok = pDisconnectEx(a, &ov3, 0, 0);
        char got[4];
        DWORD flags = 0;
        CHECK(!ok && WSAGetLastError() == WSA_IO_PENDING, "DisconnectEx is pending at first");
        CHECK(WSAGetOverlappedResult(a, &ov3, &n, TRUE, &flags) && n == 0,
              "DisconnectEx completes (reported by its event)");
        CHECK(recv(c, got, sizeof(got), 0) == 0, "the peer reads the end");
        CHECK(send(a, "x", 1, 0) == SOCKET_ERROR && WSAGetLastError() == WSAESHUTDOWN,
              "a send after it: WSAESHUTDOWN");
        WSACloseEvent((HANDLE)((ULONG_PTR)ov3.hEvent & ~(ULONG_PTR)1));
    }

    /* AcceptEx with no data room completes at the accept (an event). */
    a2 = tcp();
    ZeroMemory(&aov, sizeof(aov));
    aov.hEvent = (HANDLE)((ULONG_PTR)WSACreateEvent() | 1);
    {
        BOOL ok = pAcceptEx(l, a2, small, 0, SLOT, SLOT, &n, &aov);
        DWORD flags = 0;
        CHECK(ok || WSAGetLastError() == WSA_IO_PENDING, "AcceptEx with no data room starts");
        c2 = tcp();
        CHECK(connect(c2, (SOCKADDR *)&addr, sizeof(addr)) == 0, "a plain connect to it");
        CHECK(WSAGetOverlappedResult(l, &aov, &n, TRUE, &flags) && n == 0,
              "it completes with 0 bytes, before any data");
        WSACloseEvent((HANDLE)((ULONG_PTR)aov.hEvent & ~(ULONG_PTR)1));
    }
    /* WSARecvMsg with a completion routine, WSASendMsg without control
       data, FIONREAD through WSAIoctl. */
    {
        LPFN_WSARECVMSG pRecvMsg = (LPFN_WSARECVMSG)ext(l, g_recvmsg);
        SOCKET u = WSASocket(AF_INET, SOCK_DGRAM, IPPROTO_UDP, NULL, 0, WSA_FLAG_OVERLAPPED);
        SOCKADDR_IN ua, from;
        int ul = sizeof(ua);
        char in[32], out[] = "by routine";
        WSABUF ib = {sizeof(in), in}, ob = {10, out};
        WSAMSG rm, sm;
        OVERLAPPED rov, sov;
        DWORD avail = 0, got = 0;
        ZeroMemory(&ua, sizeof(ua));
        ua.sin_family = AF_INET;
        ua.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(u, (SOCKADDR *)&ua, sizeof(ua));
        getsockname(u, (SOCKADDR *)&ua, &ul);
        ZeroMemory(&rm, sizeof(rm));
        rm.name = (LPSOCKADDR)&from;
        rm.namelen = sizeof(from);
        rm.lpBuffers = &ib;
        rm.dwBufferCount = 1;
        ZeroMemory(&rov, sizeof(rov));
        CHECK(pRecvMsg(u, &rm, &n, &rov, on_msg) == SOCKET_ERROR &&
                  WSAGetLastError() == WSA_IO_PENDING,
              "WSARecvMsg with a completion routine is pending");
        ZeroMemory(&sm, sizeof(sm));
        sm.name = (LPSOCKADDR)&ua;
        sm.namelen = sizeof(ua);
        sm.lpBuffers = &ob;
        sm.dwBufferCount = 1;
        ZeroMemory(&sov, sizeof(sov));
        sov.hEvent = WSACreateEvent();
        CHECK((WSASendMsg(u, &sm, 0, &n, &sov, NULL) == 0 ||
               WSAGetLastError() == WSA_IO_PENDING) &&
                  WSAGetOverlappedResult(u, &sov, &got, TRUE, &avail) && got == 10,
              "WSASendMsg of a datagram to itself");
        while (routine_ov == NULL && SleepEx(5000, TRUE) == WAIT_IO_COMPLETION)
            ;
        CHECK(routine_ov == &rov && routine_error == 0 && routine_bytes == 10 &&
                  memcmp(in, out, 10) == 0 && rm.namelen == sizeof(SOCKADDR_IN) &&
                  from.sin_port == ua.sin_port && rm.Control.len == 0,
              "its routine ran in SleepEx with the datagram, the sender and no control data");
        sendto(u, "12345", 5, 0, (SOCKADDR *)&ua, sizeof(ua));
        Sleep(50);
        CHECK(WSAIoctl(u, FIONREAD, NULL, 0, &avail, sizeof(avail), &n, NULL, NULL) == 0 &&
                  avail == 5,
              "WSAIoctl(FIONREAD)");
        WSACloseEvent(sov.hEvent);
        closesocket(u);
    }
    closesocket(c2);
    closesocket(a2);
    closesocket(c);
    closesocket(a);
    /* A closed socket. */
    CHECK(!pDisconnectEx(a, NULL, 0, 0) && WSAGetLastError() == WSAENOTSOCK,
          "DisconnectEx on a closed socket: WSAENOTSOCK");
    CHECK(WSAIoctl(a, SIO_GET_EXTENSION_FUNCTION_POINTER, &g_accept, sizeof(g_accept), &fn,
                   sizeof(fn), &n, NULL, NULL) == SOCKET_ERROR &&
              WSAGetLastError() == WSAENOTSOCK,
          "WSAIoctl on a closed socket: WSAENOTSOCK");

    /* Temporary files, the end of a file, cancelling on a file. */
    {
        char dir[MAX_PATH], name[MAX_PATH], name2[MAX_PATH];
        DWORD need = GetTempPathA(0, NULL), got;
        UINT u;
        HANDLE f, fev = CreateEventA(NULL, TRUE, FALSE, NULL);
        OVERLAPPED fov;
        BOOL ok;
        size_t nl;

        got = GetTempPathA(sizeof(dir), dir);
        CHECK(need > 1 && got == need - 1 && strlen(dir) == got && dir[got - 1] == '/',
              "GetTempPath: the length, or the room needed with the NUL");
        u = GetTempFileNameA(dir, "ovlx", 0, name);
        nl = strlen(name);
        CHECK(u != 0 && strncmp(name, dir, got) == 0 && strncmp(name + got, "ovl", 3) == 0 &&
                  nl > 4 && strcmp(name + nl - 4, ".TMP") == 0,
              "GetTempFileName(0) names a file <dir><3 prefix chars><hex>.TMP");
        f = CreateFileA(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                        FILE_FLAG_OVERLAPPED | FILE_FLAG_DELETE_ON_CLOSE, NULL);
        CHECK(f != INVALID_HANDLE_VALUE, "... and creates it");
        CHECK(GetTempFileNameA(dir, "ab", 0x1ABCD, name2) == 0xABCD &&
                  strcmp(name2 + got, "abABCD.TMP") == 0,
              "GetTempFileName(unique): the low 16 bits, in hex, the file not made");
        memset(&fov, 0, sizeof(fov));
        fov.hEvent = fev;
        ok = WriteFile(f, "12345", 5, &n, &fov);
        CHECK((ok || GetLastError() == ERROR_IO_PENDING) &&
                  GetOverlappedResult(f, &fov, &n, TRUE) && n == 5,
              "WriteFile at offset 0");
        memset(&fov, 0, sizeof(fov));
        fov.hEvent = fev;
        fov.Offset = 5;
        ok = ReadFile(f, small, sizeof(small), &n, &fov);
        if (!ok && GetLastError() == ERROR_IO_PENDING)
            ok = GetOverlappedResult(f, &fov, &n, TRUE);
        CHECK(!ok && GetLastError() == ERROR_HANDLE_EOF && fov.Internal == STATUS_END_OF_FILE,
              "a read at the end: ERROR_HANDLE_EOF, Internal STATUS_END_OF_FILE");
        CHECK(!CancelIoEx(f, NULL) && GetLastError() == ERROR_NOT_FOUND,
              "CancelIoEx on a file with nothing pending: ERROR_NOT_FOUND");
        CHECK(!CancelIoEx(f, &fov) && GetLastError() == ERROR_NOT_FOUND,
              "CancelIoEx of a finished file operation: ERROR_NOT_FOUND");
        CHECK(CancelIo(f), "CancelIo on a file");
        CHECK(!CancelIo(fev) && GetLastError() == ERROR_INVALID_HANDLE,
              "CancelIo on an event: ERROR_INVALID_HANDLE");
        CHECK(CloseHandle(f) &&
                  CreateFileA(name, GENERIC_READ, 0, NULL, OPEN_EXISTING, 0, NULL) ==
                      INVALID_HANDLE_VALUE &&
                  GetLastError() == ERROR_FILE_NOT_FOUND,
              "FILE_FLAG_DELETE_ON_CLOSE removed the temporary file");
        CloseHandle(fev);
    }

    closesocket(l);
    CloseHandle(port);
    WSACleanup();
    printf(failures == 0 ? "all checks passed\n" : "%d checks failed\n", failures);
    return failures == 0 ? 0 : 1;
}
