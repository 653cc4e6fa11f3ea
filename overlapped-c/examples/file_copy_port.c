/* Copies a file with overlapped ReadFile / WriteFile through a completion
 * port: both files are associated with one port, several chunks are in
 * flight at once, each with its own context embedding the OVERLAPPED (its
 * Offset / OffsetHigh say where), recovered with CONTAINING_RECORD. A read
 * that completes is written at the same offset; a written chunk reads the
 * next stretch; a read at the end (ERROR_HANDLE_EOF) retires the chunk.
 * Then it checks the copy's size (GetFileSize, GetFileSizeEx), reads its
 * last bytes back with an event and GetOverlappedResult, and checks the
 * error codes of a read past the end and of a closed handle.
 *
 * usage: file_copy_port <from> <to>
 */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 65536
#define IN_FLIGHT 4
#define READ_KEY 1
#define WRITE_KEY 2

typedef struct {
    int index;
    ULONGLONG offset;
    OVERLAPPED ov;
    char buf[CHUNK];
} CHUNK_CTX;

static void fail(const char *what)
{
    fprintf(stderr, "%s failed: error %lu\n", what, (unsigned long)GetLastError());
    exit(1);
}

static void at(OVERLAPPED *ov, ULONGLONG offset)
{
    ZeroMemory(ov, sizeof(*ov));
    ov->Offset = (DWORD)(offset & 0xFFFFFFFF);
    ov->OffsetHigh = (DWORD)(offset >> 32);
}

/* Starts the read of a chunk; FALSE when it found the end at once. */
static BOOL start_read(HANDLE from, CHUNK_CTX *c)
{
    at(&c->ov, c->offset);
    if (ReadFile(from, c->buf, CHUNK, NULL, &c->ov))
        return TRUE; /* done at once: the packet still comes */
    if (GetLastError() == ERROR_IO_PENDING)
        return TRUE;
    if (GetLastError() == ERROR_HANDLE_EOF)
        return FALSE;
    fail("ReadFile");
    return FALSE;
}

int main(int argc, char *argv[])
{
    HANDLE from, to, port;
    CHUNK_CTX *chunks;
    int live = 0, i;
    ULONGLONG copied = 0;
    LARGE_INTEGER size_in, size_out;
    DWORD high = 0, low;

    if (argc < 3) {
        fprintf(stderr, "usage: %s <from> <to>\n", argv[0]);
        return 2;
    }
    from = CreateFile(argv[1], GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                      FILE_FLAG_OVERLAPPED, NULL);
    if (from == INVALID_HANDLE_VALUE)
        fail("CreateFile(from)");
    to = CreateFile(argv[2], GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS,
                    FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OVERLAPPED, NULL);
    if (to == INVALID_HANDLE_VALUE)
        fail("CreateFile(to)");
    port = CreateIoCompletionPort(from, NULL, READ_KEY, 0);
    if (port == NULL || CreateIoCompletionPort(to, port, WRITE_KEY, 0) != port)
        fail("CreateIoCompletionPort");

    chunks = calloc(IN_FLIGHT, sizeof(*chunks));
    if (chunks == NULL)
        return 1;
    for (i = 0; i < IN_FLIGHT; i++) {
        chunks[i].index = i;
        chunks[i].offset = (ULONGLONG)i * CHUNK;
        if (start_read(from, &chunks[i]))
            live++;
    }
    while (live > 0) {
        DWORD n = 0;
        ULONG_PTR key = 0;
        LPOVERLAPPED ov = NULL;
        BOOL ok = GetQueuedCompletionStatus(port, &n, &key, &ov, 20000);
        CHUNK_CTX *c;
        if (ov == NULL)
            fail("GetQueuedCompletionStatus");
        c = CONTAINING_RECORD(ov, CHUNK_CTX, ov);
        if (key == READ_KEY) {
            if (!ok) {
                if (GetLastError() != ERROR_HANDLE_EOF)
                    fail("a read");
                live--; /* the end of the file */
                continue;
            }
            at(&c->ov, c->offset);
            if (!WriteFile(to, c->buf, n, NULL, &c->ov) && GetLastError() != ERROR_IO_PENDING)
                fail("WriteFile");
        } else if (key == WRITE_KEY) {
            if (!ok)
                fail("a write");
            copied += n;
            c->offset += (ULONGLONG)IN_FLIGHT * CHUNK;
            if (!start_read(from, c))
                live--;
        } else {
            fprintf(stderr, "a packet with key %lu\n", (unsigned long)key);
            return 1;
        }
    }

    if (!GetFileSizeEx(from, &size_in) || !GetFileSizeEx(to, &size_out))
        fail("GetFileSizeEx");
    low = GetFileSize(to, &high);
    if ((ULONGLONG)size_out.QuadPart != copied || size_in.QuadPart != size_out.QuadPart ||
        (((ULONGLONG)high << 32) | low) != copied) {
        fprintf(stderr, "sizes: %lld in, %lld out, %llu copied\n", (long long)size_in.QuadPart,
                (long long)size_out.QuadPart, (unsigned long long)copied);
        return 1;
    }
    printf("copied %llu bytes\n", (unsigned long long)copied);

    /* The copy's last bytes, by a handle of its own (not on the port)
       with an event and GetOverlappedResult; the source's, on the port
       with an event too: the packet comes, and the event is set. */
    {
        HANDLE check = CreateFile(argv[2], GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                                  FILE_FLAG_OVERLAPPED, NULL);
        OVERLAPPED ov;
        char tail[16], want[16];
        DWORD got = 0, n = copied < 16 ? (DWORD)copied : 16;
        HANDLE ev = CreateEvent(NULL, TRUE, FALSE, NULL);
        if (check == INVALID_HANDLE_VALUE)
            fail("CreateFile(check)");
        at(&ov, copied - n);
        ov.hEvent = ev;
        if (!ReadFile(check, tail, n, NULL, &ov) && GetLastError() != ERROR_IO_PENDING)
            fail("ReadFile(check)");
        if (!GetOverlappedResult(check, &ov, &got, TRUE) || got != n)
            fail("GetOverlappedResult");
        at(&ov, copied - n);
        ov.hEvent = ev;
        if (!ReadFile(from, want, n, NULL, &ov) && GetLastError() != ERROR_IO_PENDING)
            fail("ReadFile(from, check)");
        {
            DWORD k = 0;
            ULONG_PTR key = 0;
            LPOVERLAPPED p = NULL;
            if (!GetQueuedCompletionStatus(port, &k, &key, &p, 20000) || p != &ov || k != n)
                fail("the port's packet of an operation with an event");
        }
        if (WaitForSingleObject(ev, 0) != WAIT_OBJECT_0)
            fail("the event of an operation reported on the port");
        if (memcmp(tail, want, n) != 0) {
            fprintf(stderr, "the copy's last bytes differ\n");
            return 1;
        }
        /* A read past the end: ERROR_HANDLE_EOF (at once or as the result). */
        at(&ov, copied + 100);
        ov.hEvent = ev;
        if (ReadFile(check, tail, 1, NULL, &ov) ||
            (GetLastError() == ERROR_IO_PENDING && GetOverlappedResult(check, &ov, &got, TRUE)))
            fail("a read past the end succeeded");
        if (GetLastError() != ERROR_HANDLE_EOF)
            fail("a read past the end");
        CloseHandle(check);
        /* A closed handle is an error code, not a crash. */
        at(&ov, 0);
        if (ReadFile(check, tail, 1, NULL, &ov) || GetLastError() != ERROR_INVALID_HANDLE)
            fail("ReadFile on a closed handle");
        CloseHandle(ev);
    }
    CloseHandle(from);
    CloseHandle(to);
    CloseHandle(port);
    printf("checks passed\n");
    return 0;
}
