/* The C interface's contract, checked from C: error codes for detectable
 * misuse, OVERLAPPED fields written before a completion is reported, the
 * very LPOVERLAPPED back from a port, aborts and resets with Windows'
 * codes. Prints one line per check and goes on after a failure (so a run
 * elsewhere, e.g. built for Windows, shows every difference); exits 1 if
 * any check failed. */
#include <winsock2.h>
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* NTSTATUS values that Windows' SDK keeps in ntstatus.h (the file also
   builds for Windows, to compare). */
#ifndef STATUS_SUCCESS
#define STATUS_SUCCESS ((DWORD)0x00000000L)
#endif
#ifndef STATUS_CANCELLED
#define STATUS_CANCELLED ((DWORD)0xC0000120L)
#endif
#ifndef STATUS_CONNECTION_RESET
#define STATUS_CONNECTION_RESET ((DWORD)0xC000020DL)
#endif
#ifndef STATUS_CONNECTION_ABORTED
#define STATUS_CONNECTION_ABORTED ((DWORD)0xC0000241L)
#endif

static int checks, failures;

#define CHECK(cond, what)                                                               \
    do {                                                                                \
        checks++;                                                                       \
        if (!(cond)) {                                                                  \
            failures++;                                                                 \
            printf("FAILED: %s (line %d; last error %d)\n", what, __LINE__,             \
                   WSAGetLastError());                                                  \
        } else {                                                                        \
            printf("ok %s\n", what);                                                    \
        }                                                                               \
        fflush(stdout);                                                                 \
    } while (0)

/* A connected pair over loopback: *a from connect, *b from accept. */
static void pair(SOCKET *a, SOCKET *b)
{
    SOCKET l = WSASocket(AF_INET, SOCK_STREAM, 0, NULL, 0, WSA_FLAG_OVERLAPPED);
    SOCKADDR_IN addr;
    int len = sizeof(addr);
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (SOCKADDR *)&addr, sizeof(addr)) || listen(l, 4) ||
        getsockname(l, (SOCKADDR *)&addr, &len)) {
        fprintf(stderr, "pair: %d\n", WSAGetLastError());
        exit(1);
    }
    *a = WSASocket(AF_INET, SOCK_STREAM, 0, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (connect(*a, (SOCKADDR *)&addr, sizeof(addr))) {
        fprintf(stderr, "pair connect: %d\n", WSAGetLastError());
        exit(1);
    }
    *b = accept(l, NULL, NULL);
    if (*b == INVALID_SOCKET) {
        fprintf(stderr, "pair accept: %d\n", WSAGetLastError());
        exit(1);
    }
    closesocket(l);
}

typedef struct {
    int before;
    OVERLAPPED ov; /* not the first member: CONTAINING_RECORD finds the struct */
    WSABUF wb;
    char buf[64];
} IO;

static DWORD routine_error = 12345, routine_bytes = 12345;
static LPWSAOVERLAPPED routine_ov;
static ULONG_PTR routine_internal;


static DWORD WINAPI thread_main(LPVOID arg)
{
    return (DWORD)(ULONG_PTR)arg + 1;
}

static void CALLBACK routine(DWORD error, DWORD bytes, LPWSAOVERLAPPED ov, DWORD flags)
{
    (void)flags;
    routine_error = error;
    routine_bytes = bytes;
    routine_ov = ov;
    routine_internal = ov->Internal; /* written before the routine runs */
}

int main(void)
{
    WSADATA wsa;
    SOCKET a, b;
    WSABUF wb;
    char buf[64];
    DWORD n, flags;
    OVERLAPPED ov;
    WSAEVENT ev;
    HANDLE port;
    ULONG_PTR key;
    LPOVERLAPPED got;

    /* Before WSAStartup. */
    CHECK(socket(AF_INET, SOCK_STREAM, 0) == INVALID_SOCKET &&
              WSAGetLastError() == WSANOTINITIALISED,
          "a socket before WSAStartup is WSANOTINITIALISED");
    CHECK(WSAStartup(MAKEWORD(0, 9), &wsa) == WSAVERNOTSUPPORTED && wsa.wHighVersion == 0x0202,
          "version 0.9 is refused");
    CHECK(WSAStartup(MAKEWORD(1, 1), &wsa) == 0 && wsa.wVersion == MAKEWORD(1, 1) &&
              WSACleanup() == 0,
          "version 1.1 is served");
    CHECK(WSACleanup() == SOCKET_ERROR && WSAGetLastError() == WSANOTINITIALISED,
          "a WSACleanup too many is WSANOTINITIALISED");
    CHECK(WSAStartup(MAKEWORD(2, 2), &wsa) == 0 && wsa.wVersion == MAKEWORD(2, 2),
          "WSAStartup 2.2");

    /* Handles that are not (or no longer) sockets. */
    wb.buf = buf;
    wb.len = sizeof(buf);
    memset(&ov, 0, sizeof(ov));
    CHECK(WSASend((SOCKET)12345, &wb, 1, &n, 0, &ov, NULL) == SOCKET_ERROR &&
              WSAGetLastError() == WSAENOTSOCK,
          "an unknown SOCKET is WSAENOTSOCK");
    pair(&a, &b);
    closesocket(b);
    flags = 0;
    CHECK(WSARecv(b, &wb, 1, &n, &flags, &ov, NULL) == SOCKET_ERROR &&
              WSAGetLastError() == WSAENOTSOCK,
          "a closed SOCKET is WSAENOTSOCK");
    CHECK(closesocket(b) == SOCKET_ERROR && WSAGetLastError() == WSAENOTSOCK,
          "closing twice is WSAENOTSOCK");
    CHECK(!CloseHandle((HANDLE)(ULONG_PTR)77777) && GetLastError() == ERROR_INVALID_HANDLE,
          "CloseHandle of an unknown handle is ERROR_INVALID_HANDLE");
    closesocket(a);

    /* Arguments. */
    pair(&a, &b);
    flags = 0;
    CHECK(WSARecv(b, &wb, 0, &n, &flags, &ov, NULL) == SOCKET_ERROR &&
              WSAGetLastError() == WSAEINVAL,
          "a zero buffer count is WSAEINVAL");
    CHECK(WSARecv(b, NULL, 1, &n, &flags, &ov, NULL) == SOCKET_ERROR &&
              WSAGetLastError() == WSAEFAULT,
          "a NULL WSABUF array is WSAEFAULT");
    CHECK(WSARecv(b, &wb, 1, &n, NULL, &ov, NULL) == SOCKET_ERROR &&
              WSAGetLastError() == WSAEFAULT,
          "a NULL lpFlags is WSAEFAULT");
    CHECK(WSARecv(b, &wb, 1, &n, &flags, NULL, routine) == SOCKET_ERROR &&
              WSAGetLastError() == WSAEINVAL,
          "a routine with a NULL OVERLAPPED is WSAEINVAL");
    CHECK(!WSAGetOverlappedResult(b, NULL, &n, FALSE, &flags) && WSAGetLastError() == WSAEFAULT,
          "WSAGetOverlappedResult with a NULL OVERLAPPED is WSAEFAULT");
    ov.hEvent = (HANDLE)(ULONG_PTR)4444;
    CHECK(WSARecv(b, &wb, 1, &n, &flags, &ov, NULL) == SOCKET_ERROR &&
              WSAGetLastError() == WSA_INVALID_HANDLE,
          "an hEvent that is not an event is WSA_INVALID_HANDLE");
    closesocket(a);
    closesocket(b);

    /* A pending receive with an event. */
    pair(&a, &b);
    ev = WSACreateEvent();
    memset(&ov, 0, sizeof(ov));
    ov.hEvent = ev;
    WSASetEvent(ev);
    flags = 0;
    CHECK(WSARecv(b, &wb, 1, &n, &flags, &ov, NULL) == SOCKET_ERROR &&
              WSAGetLastError() == WSA_IO_PENDING,
          "a receive with nothing sent is pending");
    CHECK(ov.Internal == STATUS_PENDING, "Internal is STATUS_PENDING while in flight");
    CHECK(WSAWaitForMultipleEvents(1, &ev, FALSE, 0, FALSE) == WSA_WAIT_TIMEOUT,
          "the start reset the event");
    CHECK(!WSAGetOverlappedResult(b, &ov, &n, FALSE, &flags) &&
              WSAGetLastError() == WSA_IO_INCOMPLETE,
          "WSAGetOverlappedResult says WSA_IO_INCOMPLETE");
    CHECK(!HasOverlappedIoCompleted(&ov), "HasOverlappedIoCompleted is FALSE");
    CHECK(send(a, "hello", 5, 0) == 5, "send");
    CHECK(WSAWaitForMultipleEvents(1, &ev, FALSE, 5000, FALSE) == WSA_WAIT_EVENT_0,
          "the event is set on completion");
    CHECK(ov.Internal == STATUS_SUCCESS && ov.InternalHigh == 5,
          "Internal and InternalHigh are written before the wait returns");
    CHECK(WSAGetOverlappedResult(b, &ov, &n, FALSE, &flags) && n == 5 && flags == 0 &&
              !memcmp(buf, "hello", 5),
          "WSAGetOverlappedResult gives the count and the bytes");

    /* Completed at once: 0, the count, and the event set anyway. */
    CHECK(send(a, "again", 5, 0) == 5, "send");
    Sleep(50);
    memset(&ov, 0, sizeof(ov));
    ov.hEvent = ev;
    flags = 0;
    n = 0;
    CHECK(WSARecv(b, &wb, 1, &n, &flags, &ov, NULL) == 0 && n == 5,
          "a receive of data already there completes at once");
    CHECK(WSAWaitForMultipleEvents(1, &ev, FALSE, 0, FALSE) == WSA_WAIT_EVENT_0,
          "an immediate completion sets the event too");

    /* One OVERLAPPED, one operation (Windows does not check this). */
    {
        OVERLAPPED ov2;
        char other[8];
        WSABUF wb2;
        wb2.buf = other;
        wb2.len = sizeof(other);
        memset(&ov2, 0, sizeof(ov2));
        flags = 0;
        CHECK(WSARecv(b, &wb2, 1, &n, &flags, &ov2, NULL) == SOCKET_ERROR &&
                  WSAGetLastError() == WSA_IO_PENDING,
              "a receive is pending");
        CHECK(WSARecv(b, &wb2, 1, &n, &flags, &ov2, NULL) == SOCKET_ERROR &&
                  WSAGetLastError() == WSAEINVAL,
              "a second operation on an OVERLAPPED in flight is WSAEINVAL");
        CHECK(CancelIoEx((HANDLE)b, &ov2), "cancel it");
        CHECK(!WSAGetOverlappedResult(b, &ov2, &n, TRUE, &flags) &&
                  WSAGetLastError() == WSA_OPERATION_ABORTED,
              "the cancelled receive is WSA_OPERATION_ABORTED");
    }

    /* A peer reset ends a pending receive with WSAECONNRESET. */
    memset(&ov, 0, sizeof(ov));
    ov.hEvent = ev;
    flags = 0;
    CHECK(WSARecv(b, &wb, 1, &n, &flags, &ov, NULL) == SOCKET_ERROR &&
              WSAGetLastError() == WSA_IO_PENDING,
          "pending receive before the reset");
    {
        LINGER l = {1, 0};
        CHECK(setsockopt(a, SOL_SOCKET, SO_LINGER, (char *)&l, sizeof(l)) == 0, "SO_LINGER");
    }
    closesocket(a);
    CHECK(WSAWaitForMultipleEvents(1, &ev, FALSE, 5000, FALSE) == WSA_WAIT_EVENT_0,
          "the reset completes the receive");
    CHECK(!WSAGetOverlappedResult(b, &ov, &n, TRUE, &flags) &&
              WSAGetLastError() == WSAECONNRESET && ov.Internal == STATUS_CONNECTION_RESET,
          "a reset is WSAECONNRESET (STATUS_CONNECTION_RESET in Internal)");
    CHECK(!GetOverlappedResult((HANDLE)b, &ov, &n, FALSE) &&
              GetLastError() == ERROR_NETNAME_DELETED,
          "GetOverlappedResult reports it as ERROR_NETNAME_DELETED");
    closesocket(b);

    /* A completion routine: runs in the alertable wait; closing the socket
       aborts a TCP receive with WSAECONNABORTED. */
    pair(&a, &b);
    memset(&ov, 0, sizeof(ov));
    flags = 0;
    CHECK(WSARecv(b, &wb, 1, &n, &flags, &ov, routine) == SOCKET_ERROR &&
              WSAGetLastError() == WSA_IO_PENDING,
          "a receive with a routine is pending");
    CHECK(SleepEx(0, FALSE) == 0 && routine_ov == NULL,
          "a wait that is not alertable runs no routine");
    {
        /* Completed at once: the call returns 0, the routine runs anyway. */
        OVERLAPPED ov3;
        char three[8];
        WSABUF wb3;
        wb3.buf = three;
        wb3.len = sizeof(three);
        memset(&ov3, 0, sizeof(ov3));
        CHECK(send(b, "now", 3, 0) == 3, "send");
        Sleep(50);
        flags = 0;
        n = 0;
        CHECK(WSARecv(a, &wb3, 1, &n, &flags, &ov3, routine) == 0 && n == 3,
              "a receive with a routine can complete at once");
        CHECK(routine_ov == NULL && SleepEx(5000, TRUE) == WAIT_IO_COMPLETION &&
                  routine_ov == &ov3 && routine_error == 0 && routine_bytes == 3,
              "and its routine still runs, in the alertable wait");
        routine_ov = NULL;
    }
    closesocket(b);
    CHECK(SleepEx(5000, TRUE) == WAIT_IO_COMPLETION, "SleepEx runs the routine");
    printf("(the routine got error %lu, %lu bytes)\n", (unsigned long)routine_error,
           (unsigned long)routine_bytes);
    CHECK(routine_ov == &ov && routine_error == WSAECONNABORTED && routine_bytes == 0 &&
              routine_internal == STATUS_CONNECTION_ABORTED,
          "closing the socket aborts the receive: WSAECONNABORTED, Internal written first");
    closesocket(a);

    /* A completion port: the very LPOVERLAPPED comes back, written. */
    pair(&a, &b);
    port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);
    CHECK(port != NULL, "CreateIoCompletionPort makes a port");
    CHECK(CreateIoCompletionPort((HANDLE)b, port, (ULONG_PTR)0xBEEF, 0) == port,
          "CreateIoCompletionPort associates a socket");
    CHECK(CreateIoCompletionPort((HANDLE)b, port, 1, 0) == NULL &&
              GetLastError() == ERROR_INVALID_PARAMETER,
          "a second association is ERROR_INVALID_PARAMETER");
    CHECK(!GetQueuedCompletionStatus(port, &n, &key, &got, 0) && got == NULL &&
              GetLastError() == WAIT_TIMEOUT,
          "an empty port times out: FALSE, NULL, WAIT_TIMEOUT");
    {
        IO *io = calloc(1, sizeof(IO));
        io->wb.buf = io->buf;
        io->wb.len = sizeof(io->buf);
        flags = 0;
        CHECK(WSARecv(b, &io->wb, 1, NULL, &flags, &io->ov, NULL) == SOCKET_ERROR &&
                  WSAGetLastError() == WSA_IO_PENDING,
              "a receive on an associated socket is pending");
        CHECK(send(a, "port!", 5, 0) == 5, "send");
        CHECK(GetQueuedCompletionStatus(port, &n, &key, &got, 5000) && got == &io->ov &&
                  key == 0xBEEF && n == 5,
              "GetQueuedCompletionStatus returns the very LPOVERLAPPED and the key");
        CHECK(CONTAINING_RECORD(got, IO, ov) == io && !memcmp(io->buf, "port!", 5) &&
                  got->Internal == STATUS_SUCCESS && got->InternalHigh == 5,
              "the OVERLAPPED is written and its struct recovered");

        /* Cancel: the packet still comes, aborted. */
        memset(&io->ov, 0, sizeof(io->ov));
        CHECK(WSARecv(b, &io->wb, 1, NULL, &flags, &io->ov, NULL) == SOCKET_ERROR &&
                  WSAGetLastError() == WSA_IO_PENDING,
              "another pending receive");
        CHECK(CancelIoEx((HANDLE)b, &io->ov), "CancelIoEx finds it");
        CHECK(!GetQueuedCompletionStatus(port, &n, &key, &got, 5000) && got == &io->ov &&
                  GetLastError() == ERROR_OPERATION_ABORTED && n == 0 &&
                  io->ov.Internal == STATUS_CANCELLED,
              "a cancelled receive: FALSE, the OVERLAPPED, ERROR_OPERATION_ABORTED");
        CHECK(!CancelIoEx((HANDLE)b, &io->ov) && GetLastError() == ERROR_NOT_FOUND,
              "cancelling it again is ERROR_NOT_FOUND");

        /* Posted packets carry any pointer back. */
        CHECK(PostQueuedCompletionStatus(port, 7, 9, (LPOVERLAPPED)io), "post");
        CHECK(PostQueuedCompletionStatus(port, 8, 10, NULL), "post");
        {
            OVERLAPPED_ENTRY e[4];
            ULONG removed = 0;
            CHECK(GetQueuedCompletionStatusEx(port, e, 4, &removed, 5000, FALSE) &&
                      removed == 2 && e[0].lpOverlapped == (LPOVERLAPPED)io &&
                      e[0].dwNumberOfBytesTransferred == 7 && e[0].lpCompletionKey == 9 &&
                      e[1].lpOverlapped == NULL && e[1].lpCompletionKey == 10,
                  "GetQueuedCompletionStatusEx takes both posted packets");
        }

        /* hEvent with its low bit set: the event reports it, no packet. */
        {
            WSAEVENT pe = WSACreateEvent();
            memset(&io->ov, 0, sizeof(io->ov));
            io->ov.hEvent = (HANDLE)((ULONG_PTR)pe | 1);
            flags = 0;
            CHECK(WSARecv(b, &io->wb, 1, NULL, &flags, &io->ov, NULL) == SOCKET_ERROR &&
                      WSAGetLastError() == WSA_IO_PENDING,
                  "a receive whose hEvent has its low bit set is pending");
            CHECK(send(a, "nopkt", 5, 0) == 5, "send");
            CHECK(WSAWaitForMultipleEvents(1, &pe, FALSE, 5000, FALSE) == WSA_WAIT_EVENT_0 &&
                      io->ov.InternalHigh == 5,
                  "its event is set and the OVERLAPPED written");
            CHECK(!GetQueuedCompletionStatus(port, &n, &key, &got, 100) && got == NULL,
                  "and no packet is posted");
            WSACloseEvent(pe);
        }

        /* Skipping the port on immediate success. */
        CHECK(SetFileCompletionNotificationModes((HANDLE)b, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS),
              "SetFileCompletionNotificationModes");
        CHECK(send(a, "quick", 5, 0) == 5, "send");
        Sleep(50);
        memset(&io->ov, 0, sizeof(io->ov));
        n = 0;
        CHECK(WSARecv(b, &io->wb, 1, &n, &flags, &io->ov, NULL) == 0 && n == 5 &&
                  io->ov.InternalHigh == 5,
              "an immediate success returns its count");
        CHECK(!GetQueuedCompletionStatus(port, &n, &key, &got, 100) && got == NULL,
              "and posts no packet");
        free(io);
    }
    closesocket(a);
    closesocket(b);
    CHECK(CloseHandle(port), "CloseHandle closes the port");
    CHECK(!GetQueuedCompletionStatus(port, &n, &key, &got, 0) &&
              GetLastError() == ERROR_INVALID_HANDLE,
          "a closed port is ERROR_INVALID_HANDLE");

    /* Datagrams: the sender is written on completion; truncation is
       WSAEMSGSIZE. */
    {
        SOCKET u1 = WSASocket(AF_INET, SOCK_DGRAM, 0, NULL, 0, WSA_FLAG_OVERLAPPED);
        SOCKET u2 = WSASocket(AF_INET, SOCK_DGRAM, 0, NULL, 0, WSA_FLAG_OVERLAPPED);
        SOCKADDR_IN any, to, from, self;
        int fromlen = sizeof(from), len = sizeof(to);
        char small[4];
        WSABUF sb;
        memset(&any, 0, sizeof(any));
        any.sin_family = AF_INET;
        any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        CHECK(bind(u1, (SOCKADDR *)&any, sizeof(any)) == 0 &&
                  bind(u2, (SOCKADDR *)&any, sizeof(any)) == 0,
              "bind two UDP sockets");
        getsockname(u2, (SOCKADDR *)&to, &len);
        len = sizeof(self);
        getsockname(u1, (SOCKADDR *)&self, &len);
        sb.buf = small;
        sb.len = sizeof(small);
        memset(&ov, 0, sizeof(ov));
        ov.hEvent = ev;
        memset(&from, 0, sizeof(from));
        flags = 0;
        CHECK(WSARecvFrom(u2, &sb, 1, NULL, &flags, (SOCKADDR *)&from, &fromlen, &ov, NULL) ==
                      SOCKET_ERROR &&
                  WSAGetLastError() == WSA_IO_PENDING,
              "WSARecvFrom is pending");
        wb.buf = "datagram";
        wb.len = 8;
        CHECK(WSASendTo(u1, &wb, 1, &n, 0, (SOCKADDR *)&to, sizeof(to), NULL, NULL) == 0 &&
                  n == 8,
              "WSASendTo without an OVERLAPPED");
        CHECK(WSAWaitForMultipleEvents(1, &ev, FALSE, 5000, FALSE) == WSA_WAIT_EVENT_0,
              "the datagram arrives");
        CHECK(from.sin_port == self.sin_port && fromlen == sizeof(SOCKADDR_IN),
              "lpFrom holds the sender when the wait returns");
        CHECK(!WSAGetOverlappedResult(u2, &ov, &n, FALSE, &flags) &&
                  WSAGetLastError() == WSAEMSGSIZE && n == 4 && !memcmp(small, "data", 4),
              "a truncated datagram is WSAEMSGSIZE with the first bytes");
        closesocket(u1);
        closesocket(u2);
    }

    /* Options, ioctls and timeouts of the non-overlapped calls. */
    pair(&a, &b);
    {
        DWORD on = 1, val = 0, ms = 100;
        int len = sizeof(val);
        u_long avail = 0;
        LINGER l = {0, 0};
        CHECK(setsockopt(a, IPPROTO_TCP, TCP_NODELAY, (char *)&on, sizeof(on)) == 0 &&
                  getsockopt(a, IPPROTO_TCP, TCP_NODELAY, (char *)&val, &len) == 0 && val == 1,
              "TCP_NODELAY set and read back");
        len = sizeof(val);
        CHECK(getsockopt(a, SOL_SOCKET, SO_TYPE, (char *)&val, &len) == 0 && val == SOCK_STREAM,
              "SO_TYPE");
        len = sizeof(l);
        l.l_onoff = 1;
        l.l_linger = 3;
        CHECK(setsockopt(a, SOL_SOCKET, SO_LINGER, (char *)&l, sizeof(l)) == 0, "SO_LINGER on");
        memset(&l, 0, sizeof(l));
        CHECK(getsockopt(a, SOL_SOCKET, SO_LINGER, (char *)&l, &len) == 0 && l.l_onoff == 1 &&
                  l.l_linger == 3,
              "SO_LINGER read back");
        CHECK(getsockopt(a, 12345, 1, (char *)&val, &len) == SOCKET_ERROR &&
                  WSAGetLastError() == WSAEINVAL,
              "an unknown level is WSAEINVAL");
        CHECK(getsockopt(a, SOL_SOCKET, 0x7777, (char *)&val, &len) == SOCKET_ERROR &&
                  WSAGetLastError() == WSAENOPROTOOPT,
              "an unknown option is WSAENOPROTOOPT");
        CHECK(send(a, "12345678", 8, 0) == 8, "send");
        Sleep(50);
        CHECK(ioctlsocket(b, FIONREAD, &avail) == 0 && avail == 8, "FIONREAD counts the bytes");
        CHECK(recv(b, buf, sizeof(buf), 0) == 8, "recv takes them");
        CHECK(setsockopt(b, SOL_SOCKET, SO_RCVTIMEO, (char *)&ms, sizeof(ms)) == 0,
              "SO_RCVTIMEO");
        CHECK(recv(b, buf, sizeof(buf), 0) == SOCKET_ERROR && WSAGetLastError() == WSAETIMEDOUT,
              "a recv past SO_RCVTIMEO is WSAETIMEDOUT");
        avail = 1;
        CHECK(ioctlsocket(b, FIONBIO, &avail) == 0 &&
                  recv(b, buf, sizeof(buf), 0) == SOCKET_ERROR &&
                  WSAGetLastError() == WSAEWOULDBLOCK,
              "a non-blocking recv with nothing there is WSAEWOULDBLOCK");
        CHECK(send(a, "x", 1, 0) == 1, "send");
        Sleep(50);
        CHECK(recv(b, buf, sizeof(buf), 0) == 1, "then gets the byte");
    }
    closesocket(a);
    closesocket(b);

    /* Threads. */
    {
        DWORD tid = 0, code = 0;
        HANDLE t = CreateThread(NULL, 0, thread_main, (LPVOID)41, 0, &tid);
        CHECK(t != NULL && tid != 0 && tid != GetCurrentThreadId(), "CreateThread");
        CHECK(WaitForSingleObject(t, 5000) == WAIT_OBJECT_0, "a thread handle is signalled at exit");
        CHECK(GetExitCodeThread(t, &code) && code == 42, "GetExitCodeThread");
        CHECK(CloseHandle(t), "CloseHandle of a thread");
    }

    /* WSAEventSelect / WSAEnumNetworkEvents. */
    {
        SOCKET l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0), s, r;
        WSAEVENT lev = WSACreateEvent(), cev = WSACreateEvent(), sev = WSACreateEvent();
        WSANETWORKEVENTS ne;
        SOCKADDR_IN addr;
        int len = sizeof(addr), rc, seen = 0, tries;
        u_long zero = 0;
        char got[16];

        memset(&addr, 0, sizeof(addr));
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(l, (SOCKADDR *)&addr, sizeof(addr));
        listen(l, 4);
        getsockname(l, (SOCKADDR *)&addr, &len);
        CHECK(WSAEventSelect((SOCKET)12345, lev, FD_ACCEPT) == SOCKET_ERROR &&
                  WSAGetLastError() == WSAENOTSOCK,
              "WSAEventSelect on a SOCKET that is not one: WSAENOTSOCK");
        CHECK(WSAEventSelect(l, (WSAEVENT)(ULONG_PTR)12345, FD_ACCEPT) == SOCKET_ERROR &&
                  WSAGetLastError() == WSAEINVAL,
              "WSAEventSelect with a handle that is not an event: WSAEINVAL");
        CHECK(WSAEventSelect(l, lev, FD_ALL_EVENTS + 1) == SOCKET_ERROR &&
                  WSAGetLastError() == WSAEINVAL,
              "WSAEventSelect with undefined bits: WSAEINVAL");
        CHECK(WSAEventSelect(l, lev, FD_ACCEPT | FD_CLOSE) == 0, "WSAEventSelect(FD_ACCEPT)");
        CHECK(WSAEnumNetworkEvents(l, lev, NULL) == SOCKET_ERROR && WSAGetLastError() == WSAEFAULT,
              "WSAEnumNetworkEvents with a NULL record: WSAEFAULT");
        CHECK(ioctlsocket(l, FIONBIO, &zero) == SOCKET_ERROR && WSAGetLastError() == WSAEINVAL,
              "a selected socket cannot be made blocking");
        CHECK(WSAEventSelect(c, cev, FD_CONNECT | FD_WRITE | FD_READ | FD_CLOSE) == 0,
              "WSAEventSelect(FD_CONNECT | FD_WRITE | ...)");
        rc = connect(c, (SOCKADDR *)&addr, sizeof(addr));
        CHECK(rc == 0 || WSAGetLastError() == WSAEWOULDBLOCK,
              "connect on a selected (non-blocking) socket");
        for (tries = 0; tries < 10 && (seen & (FD_CONNECT | FD_WRITE)) != (FD_CONNECT | FD_WRITE);
             tries++) {
            if (WSAWaitForMultipleEvents(1, &cev, FALSE, 5000, FALSE) != WSA_WAIT_EVENT_0 ||
                WSAEnumNetworkEvents(c, cev, &ne) != 0)
                break;
            if ((ne.lNetworkEvents & FD_CONNECT) && ne.iErrorCode[FD_CONNECT_BIT] != 0)
                break;
            seen |= ne.lNetworkEvents;
        }
        CHECK(seen == (FD_CONNECT | FD_WRITE), "FD_CONNECT (error 0), then FD_WRITE");
        CHECK(WSAWaitForMultipleEvents(1, &lev, FALSE, 5000, FALSE) == WSA_WAIT_EVENT_0 &&
                  WSAEnumNetworkEvents(l, lev, &ne) == 0 && ne.lNetworkEvents == FD_ACCEPT &&
                  ne.iErrorCode[FD_ACCEPT_BIT] == 0,
              "FD_ACCEPT on the listener");
        CHECK(WSAWaitForMultipleEvents(1, &lev, FALSE, 0, FALSE) == WSA_WAIT_TIMEOUT,
              "WSAEnumNetworkEvents reset the event");
        s = accept(l, NULL, NULL);
        CHECK(s != INVALID_SOCKET, "accept on FD_ACCEPT");
        {
            /* An accept that finds no connection leaves none in flight:
               the next connection raises FD_ACCEPT. */
            SOCKET c2 = socket(AF_INET, SOCK_STREAM, 0), s2;
            CHECK(accept(l, NULL, NULL) == INVALID_SOCKET && WSAGetLastError() == WSAEWOULDBLOCK,
                  "accept with no connection: WSAEWOULDBLOCK");
            connect(c2, (SOCKADDR *)&addr, sizeof(addr));
            CHECK(WSAWaitForMultipleEvents(1, &lev, FALSE, 5000, FALSE) == WSA_WAIT_EVENT_0 &&
                      WSAEnumNetworkEvents(l, lev, &ne) == 0 && ne.lNetworkEvents == FD_ACCEPT,
                  "... and the next connection raises FD_ACCEPT");
            s2 = accept(l, NULL, NULL);
            CHECK(s2 != INVALID_SOCKET, "which accept takes");
            closesocket(s2);
            closesocket(c2);
        }
        CHECK(ioctlsocket(s, FIONBIO, &zero) == SOCKET_ERROR && WSAGetLastError() == WSAEINVAL &&
                  recv(s, got, sizeof(got), 0) == SOCKET_ERROR &&
                  WSAGetLastError() == WSAEWOULDBLOCK,
              "the accepted socket takes the listener's selection (non-blocking)");
        CHECK(WSAEventSelect(s, sev, FD_READ | FD_CLOSE) == 0, "its own WSAEventSelect");
        send(c, "x", 1, 0);
        CHECK(WSAWaitForMultipleEvents(1, &sev, FALSE, 5000, FALSE) == WSA_WAIT_EVENT_0 &&
                  WSAEnumNetworkEvents(s, sev, &ne) == 0 && ne.lNetworkEvents == FD_READ,
              "FD_READ when data comes");
        send(c, "y", 1, 0);
        CHECK(WSAWaitForMultipleEvents(1, &sev, FALSE, 200, FALSE) == WSA_WAIT_TIMEOUT,
              "no FD_READ again before a recv re-enables it");
        rc = recv(s, got, sizeof(got), 0);
        CHECK(rc >= 1 && got[0] == 'x', "recv takes the data");
        if (rc == 1)
            recv(s, got, sizeof(got), 0);
        CHECK(WSAEnumNetworkEvents(s, sev, &ne) == 0, "WSAEnumNetworkEvents after the recv");
        closesocket(c);
        seen = 0;
        for (tries = 0; tries < 10 && !(seen & FD_CLOSE); tries++) {
            if (WSAWaitForMultipleEvents(1, &sev, FALSE, 5000, FALSE) != WSA_WAIT_EVENT_0 ||
                WSAEnumNetworkEvents(s, sev, &ne) != 0)
                break;
            seen |= ne.lNetworkEvents;
            if (ne.lNetworkEvents & FD_READ)
                recv(s, got, sizeof(got), 0);
        }
        CHECK((seen & FD_CLOSE) && ne.iErrorCode[FD_CLOSE_BIT] == 0,
              "FD_CLOSE with error 0 after a graceful close");
        CHECK(WSAEventSelect(s, NULL, 0) == 0, "a zero mask cancels (the event ignored)");
        closesocket(s);

        /* A refused connect: FD_CONNECT with WSAECONNREFUSED. */
        closesocket(l);
        r = socket(AF_INET, SOCK_STREAM, 0);
        CHECK(WSAEventSelect(r, cev, FD_CONNECT) == 0, "WSAEventSelect(FD_CONNECT)");
        connect(r, (SOCKADDR *)&addr, sizeof(addr));
        CHECK(WSAWaitForMultipleEvents(1, &cev, FALSE, 5000, FALSE) == WSA_WAIT_EVENT_0 &&
                  WSAEnumNetworkEvents(r, cev, &ne) == 0 && ne.lNetworkEvents == FD_CONNECT &&
                  ne.iErrorCode[FD_CONNECT_BIT] == WSAECONNREFUSED,
              "FD_CONNECT with WSAECONNREFUSED");
        closesocket(r);
        WSACloseEvent(lev);
        WSACloseEvent(cev);
        WSACloseEvent(sev);
    }

    /* A socket as a waitable object, and FILE_SKIP_SET_EVENT_ON_HANDLE. */
    {
        SOCKET x, y;
        WSAEVENT wev = WSACreateEvent();
        OVERLAPPED wov;
        WSABUF wwb;
        DWORD wn, wflags = 0;
        char wbuf[8];
        int round;

        pair(&x, &y);
        for (round = 0; round < 2; round++) {
            memset(&wov, 0, sizeof(wov));
            wov.hEvent = wev;
            wwb.buf = wbuf;
            wwb.len = sizeof(wbuf);
            wflags = 0;
            if (WSARecv(y, &wwb, 1, &wn, &wflags, &wov, NULL) == SOCKET_ERROR &&
                WSAGetLastError() != WSA_IO_PENDING)
                break;
            send(x, "w", 1, 0);
            WSAWaitForMultipleEvents(1, &wev, FALSE, 5000, FALSE);
            WSAGetOverlappedResult(y, &wov, &wn, TRUE, &wflags);
            if (round == 0) {
                CHECK(WaitForSingleObject((HANDLE)y, 0) == WAIT_OBJECT_0,
                      "a completion signals the socket handle");
                CHECK(SetFileCompletionNotificationModes((HANDLE)y,
                                                         FILE_SKIP_SET_EVENT_ON_HANDLE),
                      "SetFileCompletionNotificationModes(FILE_SKIP_SET_EVENT_ON_HANDLE)");
            } else {
                CHECK(wn == 1 && WaitForSingleObject((HANDLE)y, 0) == WAIT_TIMEOUT,
                      "after FILE_SKIP_SET_EVENT_ON_HANDLE it does not");
            }
        }
        closesocket(x);
        closesocket(y);
        WSACloseEvent(wev);
    }

    /* Address text. */
    {
        SOCKADDR_IN sin;
        char text[64];
        DWORD tl = sizeof(text);
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(0x7f000001);
        sin.sin_port = htons(8080);
        CHECK(WSAAddressToStringA((LPSOCKADDR)&sin, sizeof(sin), NULL, text, &tl) == 0 &&
                  !strcmp(text, "127.0.0.1:8080") && tl == 15,
              "WSAAddressToString writes ip:port");
        tl = 4;
        CHECK(WSAAddressToStringA((LPSOCKADDR)&sin, sizeof(sin), NULL, text, &tl) ==
                      SOCKET_ERROR &&
                  WSAGetLastError() == WSAEFAULT && tl == 15,
              "a buffer too small is WSAEFAULT with the length needed");
    }

    WSACloseEvent(ev);
    CHECK(WSACleanup() == 0, "WSACleanup");
    if (failures != 0) {
        printf("%d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("%d checks passed\n", checks);
    return 0;
}
