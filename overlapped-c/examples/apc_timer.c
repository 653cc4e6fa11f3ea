/* Asynchronous procedure calls, a waitable timer and alertable waits:
 * QueueUserAPC to this thread (run by SleepEx) and to another thread
 * (waking its WaitForSingleObjectEx); a periodic waitable timer whose
 * completion routine runs in SleepEx until CancelWaitableTimer; an
 * alertable GetQueuedCompletionStatusEx that returns for an APC; and
 * waits on a socket handle (signalled when its operation completes).
 * Prints one line per check; exits 1 at the first that fails.
 */
#include <winsock2.h>
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
static volatile LONG apc_value, worker_apcs, ticks;
static HANDLE worker_go;

#define CHECK(cond, what)                                                       \
    do {                                                                        \
        if (cond) {                                                             \
            printf("ok: %s\n", what);                                           \
        } else {                                                                \
            printf("FAILED: %s (error %lu)\n", what, (unsigned long)GetLastError()); \
            failures++;                                                         \
        }                                                                       \
        fflush(stdout);                                                         \
    } while (0)

static VOID NTAPI note_value(ULONG_PTR v)
{
    InterlockedExchange(&apc_value, (LONG)v);
}

static VOID NTAPI worker_apc(ULONG_PTR v)
{
    InterlockedExchangeAdd(&worker_apcs, (LONG)v);
}

static VOID CALLBACK tick(LPVOID arg, DWORD low, DWORD high)
{
    (void)low;
    (void)high;
    InterlockedIncrement((LONG *)arg);
}

static DWORD WINAPI worker(LPVOID arg)
{
    (void)arg;
    /* Alertable: returns for the APC first, then for the event. */
    DWORD first = WaitForSingleObjectEx(worker_go, 20000, TRUE);
    DWORD second = WaitForSingleObjectEx(worker_go, 20000, TRUE);
    return first == WAIT_IO_COMPLETION && second == WAIT_OBJECT_0 ? 0 : 1;
}

int main(void)
{
    WSADATA wsa;
    HANDLE t, timer, port;
    LARGE_INTEGER due;
    DWORD code = 99, r;
    int spins;

    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
        return 1;

    /* An APC to this thread runs in its alertable sleep, not before. */
    CHECK(QueueUserAPC(note_value, GetCurrentThread(), 42) != 0, "QueueUserAPC to this thread");
    CHECK(apc_value == 0, "the APC waits for an alertable wait");
    CHECK(SleepEx(5000, TRUE) == WAIT_IO_COMPLETION && apc_value == 42,
          "SleepEx ran it and returned WAIT_IO_COMPLETION");

    /* An APC to another thread wakes its alertable wait. */
    worker_go = CreateEvent(NULL, TRUE, FALSE, NULL);
    t = CreateThread(NULL, 0, worker, NULL, 0, NULL);
    Sleep(50);
    CHECK(QueueUserAPC(worker_apc, t, 7) != 0, "QueueUserAPC to a CreateThread thread");
    for (spins = 0; worker_apcs == 0 && spins < 2000; spins++)
        Sleep(5);
    CHECK(worker_apcs == 7, "the worker's WaitForSingleObjectEx ran it");
    SetEvent(worker_go);
    CHECK(WaitForSingleObject(t, 20000) == WAIT_OBJECT_0 && GetExitCodeThread(t, &code) &&
              code == 0,
          "the worker saw WAIT_IO_COMPLETION, then its event");
    SetLastError(0);
    CHECK(QueueUserAPC(worker_apc, worker_go, 1) == 0 && GetLastError() == ERROR_INVALID_HANDLE,
          "QueueUserAPC to an event handle: ERROR_INVALID_HANDLE");
    CloseHandle(t);

    /* A periodic timer: 30 ms, then every 10 ms, in alertable sleeps. */
    timer = CreateWaitableTimer(NULL, FALSE, NULL);
    CHECK(timer != NULL, "CreateWaitableTimer");
    due.QuadPart = -300000; /* 30 ms, in 100 ns units */
    CHECK(SetWaitableTimer(timer, &due, 10, tick, (LPVOID)&ticks, FALSE),
          "SetWaitableTimer with a routine");
    CHECK(ticks == 0, "the routine waits for an alertable wait");
    for (spins = 0; ticks < 3 && spins < 1000; spins++)
        if (SleepEx(5000, TRUE) != WAIT_IO_COMPLETION)
            break;
    CHECK(ticks >= 3, "the routine ran once per period in SleepEx");
    CHECK(CancelWaitableTimer(timer), "CancelWaitableTimer");
    r = ticks;
    CHECK(SleepEx(60, TRUE) == 0 && ticks == (LONG)r, "no run after the cancel");
    CloseHandle(timer);
    CHECK(!CancelWaitableTimer(timer) && GetLastError() == ERROR_INVALID_HANDLE,
          "a closed timer handle: ERROR_INVALID_HANDLE");

    /* An alertable port wait returns for an APC, then takes packets. */
    port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    {
        OVERLAPPED_ENTRY e[4];
        ULONG got = 99;
        apc_value = 0;
        QueueUserAPC(note_value, GetCurrentThread(), 5);
        CHECK(!GetQueuedCompletionStatusEx(port, e, 4, &got, 5000, TRUE) &&
                  GetLastError() == WAIT_IO_COMPLETION && apc_value == 5 && got == 0,
              "GetQueuedCompletionStatusEx(fAlertable) ran the APC: WAIT_IO_COMPLETION");
        PostQueuedCompletionStatus(port, 3, 9, NULL);
        CHECK(GetQueuedCompletionStatusEx(port, e, 4, &got, 5000, TRUE) && got == 1 &&
                  e[0].lpCompletionKey == 9 && e[0].dwNumberOfBytesTransferred == 3,
              "then it takes the posted packet");
        QueueUserAPC(note_value, GetCurrentThread(), 6);
        CHECK(!GetQueuedCompletionStatusEx(port, e, 4, &got, 50, FALSE) &&
                  GetLastError() == WAIT_TIMEOUT && apc_value == 5,
              "not alertable: a timeout, the APC still queued");
        CHECK(SleepEx(0, TRUE) == WAIT_IO_COMPLETION && apc_value == 6,
              "the next alertable wait runs it");
    }
    CloseHandle(port);

    /* A socket handle in a wait: signalled when its operation completes. */
    {
        SOCKET s = WSASocket(AF_INET, SOCK_DGRAM, IPPROTO_UDP, NULL, 0, WSA_FLAG_OVERLAPPED);
        SOCKADDR_IN a;
        int alen = sizeof(a);
        char buf[64];
        WSABUF wb = {sizeof(buf), buf};
        OVERLAPPED ov;
        DWORD n = 0, flags = 0;
        HANDLE never = CreateEvent(NULL, TRUE, FALSE, NULL);
        HANDLE list[2];
        ZeroMemory(&a, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(s, (SOCKADDR *)&a, sizeof(a));
        getsockname(s, (SOCKADDR *)&a, &alen);
        ZeroMemory(&ov, sizeof(ov));
        if (WSARecv(s, &wb, 1, NULL, &flags, &ov, NULL) == SOCKET_ERROR &&
            WSAGetLastError() != WSA_IO_PENDING)
            CHECK(0, "WSARecv");
        list[0] = never;
        list[1] = (HANDLE)s;
        CHECK(WaitForMultipleObjectsEx(2, list, FALSE, 50, TRUE) == WAIT_TIMEOUT,
              "a socket with its receive pending is not signalled");
        sendto(s, "ping", 4, 0, (SOCKADDR *)&a, sizeof(a));
        CHECK(WaitForMultipleObjectsEx(2, list, FALSE, 5000, TRUE) == WAIT_OBJECT_0 + 1,
              "WaitForMultipleObjectsEx returns the socket once the receive completed");
        CHECK(WaitForSingleObject((HANDLE)s, 0) == WAIT_OBJECT_0,
              "WaitForSingleObject on the socket");
        CHECK(WSAGetOverlappedResult(s, &ov, &n, FALSE, &flags) && n == 4 &&
                  memcmp(buf, "ping", 4) == 0,
              "the receive's result");
        CloseHandle(never);
        closesocket(s);
    }

    WSACleanup();
    printf(failures == 0 ? "all checks passed\n" : "%d checks failed\n", failures);
    return failures == 0 ? 0 : 1;
}
