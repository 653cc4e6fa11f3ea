/* Ctrl+C as SetConsoleCtrlHandler delivers it: the test harness sends
 * SIGINT once the program says it is ready; the handler runs on another
 * thread and wakes the main thread through an event; the program then
 * removes its handler, ignores Ctrl+C (a NULL handler), and exits 0. */
#include <windows.h>
#include <stdio.h>

static HANDLE done;
static volatile LONG seen = -1;
static volatile LONG thread_differs;
static DWORD main_thread;

static BOOL WINAPI on_ctrl(DWORD type)
{
    InterlockedExchange(&seen, (LONG)type);
    InterlockedExchange(&thread_differs, GetCurrentThreadId() != main_thread);
    SetEvent(done);
    return TRUE;
}

int main(void)
{
    main_thread = GetCurrentThreadId();
    done = CreateEvent(NULL, TRUE, FALSE, NULL);
    if (done == NULL || !SetConsoleCtrlHandler(on_ctrl, TRUE)) {
        puts("setup failed");
        return 1;
    }
    puts("ready");
    fflush(stdout);
    if (WaitForSingleObject(done, 20000) != WAIT_OBJECT_0) {
        puts("no Ctrl+C came");
        return 1;
    }
    printf("handled type %ld on %s thread\n", (long)seen,
           thread_differs ? "another" : "the main");
    if (!SetConsoleCtrlHandler(on_ctrl, FALSE) || SetConsoleCtrlHandler(on_ctrl, FALSE) ||
        GetLastError() != ERROR_INVALID_PARAMETER) {
        puts("removing the handler went wrong");
        return 1;
    }
    if (!SetConsoleCtrlHandler(NULL, TRUE)) {
        puts("ignoring Ctrl+C failed");
        return 1;
    }
    puts("ignoring");
    fflush(stdout);
    /* The harness sends a second SIGINT now; it must not end the process. */
    Sleep(500);
    puts("still here");
    CloseHandle(done);
    return 0;
}
