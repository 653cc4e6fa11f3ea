/*
 * overlapped_ext.h — the Microsoft extension functions, overlapped files,
 * asynchronous procedure calls and waitable timers (included by
 * overlapped.h, so by every Windows header name here; see overlapped.h
 * for THE CONTRACT, which these calls keep too).
 *
 * What the caller keeps alive, and until the completion is REPORTED (the
 * OVERLAPPED, as for WSARecv):
 *   AcceptEx        lpOutputBuffer (all three parts: data room, local and
 *                   remote address slots) and the OVERLAPPED; the accept
 *                   socket stays open (closing it aborts the accept).
 *   ConnectEx       lpSendBuffer and the OVERLAPPED (name: during the call).
 *   DisconnectEx    the OVERLAPPED.
 *   TransmitFile    the TRANSMIT_FILE_BUFFERS' Head and Tail memory and the
 *                   OVERLAPPED (the TRANSMIT_FILE_BUFFERS struct itself and
 *                   the file handle only during the call: the operation
 *                   keeps its own reference to the file).
 *   WSARecvMsg      the WSAMSG, the memory of its buffers, its name,
 *                   namelen and Control buffer (all written at the
 *                   completion), and the OVERLAPPED; the WSABUF array only
 *                   during the call.
 *   WSASendMsg      the memory of its buffers and the OVERLAPPED (the
 *                   WSAMSG, its name, Control and WSABUF array: during the
 *                   call).
 *   ReadFile /      lpBuffer and the OVERLAPPED.
 *   WriteFile
 * Detected misuse is an error code: a NULL OVERLAPPED to AcceptEx or
 * ConnectEx (WSAEINVAL), AcceptEx's address slots too small for the
 * family's sockaddr + 16 bytes (WSAEINVAL), a NULL output buffer
 * (WSAEFAULT), an unknown extension GUID (WSAEINVAL), a SOCKET that is not
 * one (WSAENOTSOCK), a file HANDLE that is not one (ERROR_INVALID_HANDLE),
 * an OVERLAPPED whose operation is still in flight (WSAEINVAL), unknown
 * TransmitFile or DisconnectEx flags (WSAEINVAL).
 *
 * Handles: a file HANDLE (CreateFile) and a waitable-timer HANDLE are
 * table keys like a SOCKET's; CloseHandle closes both.
 *
 * Where this differs from Windows:
 * - AcceptEx's address slots hold this library's own format (a 4-byte
 *   header, then the sockaddr at an 8-aligned address): read them with
 *   GetAcceptExSockaddrs, as on Windows.
 * - ConnectEx binds an unbound socket (Windows fails with WSAEINVAL).
 * - A socket reused after DisconnectEx(TF_REUSE_SOCKET) or accepted into
 *   by AcceptEx gets a fresh system socket: options set on it before are
 *   not carried over (set them after the completion, or on the listener).
 * - WSAIoctl completes at once and does not use lpOverlapped.
 * - A waitable timer signals only through its completion routine (its
 *   handle is not a waitable object); timer names are not supported.
 * - CreateFile ignores the sharing mode and the attributes;
 *   FILE_FLAG_OVERLAPPED or not, an OVERLAPPED given to ReadFile /
 *   WriteFile makes the call overlapped (a NULL one reads or writes at the
 *   file pointer and waits). ReadFile at the end of a file fails with
 *   ERROR_HANDLE_EOF (at once, or as the operation's result), as Windows'
 *   overlapped reads do.
 * - GetTempPath gives TMPDIR (or /tmp/) with a trailing '/', and
 *   GetTempFileName joins with '/'.
 */
#ifndef OVERLAPPED_EXT_H
#define OVERLAPPED_EXT_H

#ifdef __cplusplus
extern "C" {
#endif

#ifndef PASCAL
#define PASCAL
#endif
#ifndef NTAPI
#define NTAPI
#endif

/* ------------------------------------------------------------------ */
/* The extension functions.                                            */
/* ------------------------------------------------------------------ */

#define IOC_VOID 0x20000000
#define IOC_OUT 0x40000000
#define IOC_IN 0x80000000
#define IOC_INOUT (IOC_IN | IOC_OUT)
#define IOC_WS2 0x08000000
#define _WSAIORW(x, y) (IOC_INOUT | (x) | (y))
#define SIO_GET_EXTENSION_FUNCTION_POINTER _WSAIORW(IOC_WS2, 6)

#define WSAID_ACCEPTEX                                                                   \
    {                                                                                    \
        0xb5367df1, 0xcbac, 0x11cf, { 0x95, 0xca, 0x00, 0x80, 0x5f, 0x48, 0xa1, 0x92 } \
    }
#define WSAID_GETACCEPTEXSOCKADDRS                                                       \
    {                                                                                    \
        0xb5367df2, 0xcbac, 0x11cf, { 0x95, 0xca, 0x00, 0x80, 0x5f, 0x48, 0xa1, 0x92 } \
    }
#define WSAID_CONNECTEX                                                                  \
    {                                                                                    \
        0x25a207b9, 0xddf3, 0x4660, { 0x8e, 0xe9, 0x76, 0xe5, 0x8c, 0x74, 0x06, 0x3e } \
    }
#define WSAID_DISCONNECTEX                                                               \
    {                                                                                    \
        0x7fda2e11, 0x8630, 0x436f, { 0xa0, 0x31, 0xf5, 0x36, 0xa6, 0xee, 0xc1, 0x57 } \
    }
#define WSAID_TRANSMITFILE                                                               \
    {                                                                                    \
        0xb5367df0, 0xcbac, 0x11cf, { 0x95, 0xca, 0x00, 0x80, 0x5f, 0x48, 0xa1, 0x92 } \
    }
#define WSAID_WSARECVMSG                                                                 \
    {                                                                                    \
        0xf689d7c8, 0x6f1f, 0x436b, { 0x8a, 0x53, 0xe5, 0x4f, 0xe3, 0x51, 0xc3, 0x22 } \
    }
#define WSAID_WSASENDMSG                                                                 \
    {                                                                                    \
        0xa441e712, 0x754f, 0x43ca, { 0x84, 0xa7, 0x0d, 0xee, 0x44, 0xcf, 0x60, 0x6d } \
    }

#define TF_DISCONNECT 0x01
#define TF_REUSE_SOCKET 0x02
#define TF_WRITE_BEHIND 0x04
#define TF_USE_DEFAULT_WORKER 0x00
#define TF_USE_SYSTEM_THREAD 0x10
#define TF_USE_KERNEL_APC 0x20

typedef struct _TRANSMIT_FILE_BUFFERS {
    LPVOID Head;
    DWORD HeadLength;
    LPVOID Tail;
    DWORD TailLength;
} TRANSMIT_FILE_BUFFERS, *PTRANSMIT_FILE_BUFFERS, *LPTRANSMIT_FILE_BUFFERS;

typedef struct _WSAMSG {
    LPSOCKADDR name;
    INT namelen;
    LPWSABUF lpBuffers;
    ULONG dwBufferCount;
    WSABUF Control;
    ULONG dwFlags;
} WSAMSG, *PWSAMSG, *LPWSAMSG;

typedef struct _WSACMSGHDR {
    SIZE_T cmsg_len;
    INT cmsg_level;
    INT cmsg_type;
    /* the data follows */
} WSACMSGHDR, *PWSACMSGHDR, *LPWSACMSGHDR;

typedef struct _IN_PKTINFO {
    IN_ADDR ipi_addr;
    ULONG ipi_ifindex;
} IN_PKTINFO, *PIN_PKTINFO;

typedef struct _IN6_PKTINFO {
    IN6_ADDR ipi6_addr;
    ULONG ipi6_ifindex;
} IN6_PKTINFO, *PIN6_PKTINFO;

/* Control messages: each a WSACMSGHDR, its data at the next multiple of
   8 bytes, the next header at the next multiple of 8 after the data. */
#define OVL_CMSG_ALIGN8(n) (((SIZE_T)(n) + 7) & ~(SIZE_T)7)
#define WSA_CMSG_LEN(length) (OVL_CMSG_ALIGN8(sizeof(WSACMSGHDR)) + (length))
#define WSA_CMSG_SPACE(length) (OVL_CMSG_ALIGN8(sizeof(WSACMSGHDR)) + OVL_CMSG_ALIGN8(length))
#define WSA_CMSG_DATA(cmsg) ((PUCHAR)(cmsg) + OVL_CMSG_ALIGN8(sizeof(WSACMSGHDR)))
#define WSA_CMSG_FIRSTHDR(msg)                                                  \
    (((msg)->Control.len >= sizeof(WSACMSGHDR)) ? (LPWSACMSGHDR)(msg)->Control.buf \
                                                 : (LPWSACMSGHDR)NULL)
#define WSA_CMSG_NXTHDR(msg, cmsg)                                                        \
    (((cmsg) == NULL)                                                                     \
         ? WSA_CMSG_FIRSTHDR(msg)                                                         \
         : ((((PUCHAR)(cmsg) + OVL_CMSG_ALIGN8((cmsg)->cmsg_len) + sizeof(WSACMSGHDR)) >  \
             (PUCHAR)((msg)->Control.buf) + (msg)->Control.len)                           \
                ? (LPWSACMSGHDR)NULL                                                      \
                : (LPWSACMSGHDR)((PUCHAR)(cmsg) + OVL_CMSG_ALIGN8((cmsg)->cmsg_len))))
typedef UCHAR *PUCHAR;

/* AcceptEx: accepts a connection of sListenSocket into sAcceptSocket (a
   socket made beforehand, unconnected, or reused after DisconnectEx with
   TF_REUSE_SOCKET). With dwReceiveDataLength > 0 it completes when the
   first data came (that data in the first dwReceiveDataLength bytes of
   lpOutputBuffer; 0 bytes when the client closed without sending), else at
   the accept. The local and remote addresses go into the two slots after
   the data room, each dwLocalAddressLength / dwRemoteAddressLength bytes,
   at least the family's sockaddr + 16 (sizeof(SOCKADDR_IN) + 16 for IPv4).
   The completion is reported on the listening socket (its port, its
   key). Then setsockopt(SO_UPDATE_ACCEPT_CONTEXT) is accepted (nothing to
   do) and GetAcceptExSockaddrs reads the addresses. */
typedef BOOL(PASCAL *LPFN_ACCEPTEX)(SOCKET sListenSocket, SOCKET sAcceptSocket,
                                    PVOID lpOutputBuffer, DWORD dwReceiveDataLength,
                                    DWORD dwLocalAddressLength, DWORD dwRemoteAddressLength,
                                    LPDWORD lpdwBytesReceived, LPOVERLAPPED lpOverlapped);
BOOL PASCAL AcceptEx(SOCKET sListenSocket, SOCKET sAcceptSocket, PVOID lpOutputBuffer,
                     DWORD dwReceiveDataLength, DWORD dwLocalAddressLength,
                     DWORD dwRemoteAddressLength, LPDWORD lpdwBytesReceived,
                     LPOVERLAPPED lpOverlapped);
/* GetAcceptExSockaddrs: pointers into lpOutputBuffer (the same three
   lengths as the AcceptEx call) at the two addresses, and their lengths. */
typedef VOID(PASCAL *LPFN_GETACCEPTEXSOCKADDRS)(PVOID lpOutputBuffer, DWORD dwReceiveDataLength,
                                                DWORD dwLocalAddressLength,
                                                DWORD dwRemoteAddressLength,
                                                struct sockaddr **LocalSockaddr,
                                                LPINT LocalSockaddrLength,
                                                struct sockaddr **RemoteSockaddr,
                                                LPINT RemoteSockaddrLength);
VOID PASCAL GetAcceptExSockaddrs(PVOID lpOutputBuffer, DWORD dwReceiveDataLength,
                                 DWORD dwLocalAddressLength, DWORD dwRemoteAddressLength,
                                 struct sockaddr **LocalSockaddr, LPINT LocalSockaddrLength,
                                 struct sockaddr **RemoteSockaddr, LPINT RemoteSockaddrLength);
/* ConnectEx (through WSAIoctl only): connects, then sends the buffer. */
typedef BOOL(PASCAL *LPFN_CONNECTEX)(SOCKET s, const struct sockaddr *name, int namelen,
                                     PVOID lpSendBuffer, DWORD dwSendDataLength,
                                     LPDWORD lpdwBytesSent, LPOVERLAPPED lpOverlapped);
/* DisconnectEx (through WSAIoctl only): always pending at first; with
   TF_REUSE_SOCKET the socket is ready for AcceptEx / ConnectEx after it.
   lpOverlapped NULL waits. dwReserved must be 0. */
typedef BOOL(PASCAL *LPFN_DISCONNECTEX)(SOCKET s, LPOVERLAPPED lpOverlapped, DWORD dwFlags,
                                        DWORD dwReserved);
/* TransmitFile: Head, nNumberOfBytesToWrite bytes of hFile (0: to the end)
   from OVERLAPPED.Offset/OffsetHigh, Tail — one operation; the file's
   bytes never pass through user space. TF_DISCONNECT / TF_REUSE_SOCKET:
   a DisconnectEx follows, and the operation completes when it did. hFile
   NULL: the buffers only. nNumberOfBytesPerSend is a hint (ignored). */
typedef BOOL(PASCAL *LPFN_TRANSMITFILE)(SOCKET hSocket, HANDLE hFile,
                                        DWORD nNumberOfBytesToWrite,
                                        DWORD nNumberOfBytesPerSend, LPOVERLAPPED lpOverlapped,
                                        LPTRANSMIT_FILE_BUFFERS lpTransmitBuffers,
                                        DWORD dwReserved);
BOOL PASCAL TransmitFile(SOCKET hSocket, HANDLE hFile, DWORD nNumberOfBytesToWrite,
                         DWORD nNumberOfBytesPerSend, LPOVERLAPPED lpOverlapped,
                         LPTRANSMIT_FILE_BUFFERS lpTransmitBuffers, DWORD dwReserved);
/* WSARecvMsg (through WSAIoctl only): as WSARecvFrom into lpMsg's
   buffers; at the completion name/namelen get the sender, Control.buf the
   control messages (IN_PKTINFO / IN6_PKTINFO after setsockopt IP_PKTINFO /
   IPV6_PKTINFO) with Control.len their bytes, dwFlags MSG_TRUNC,
   MSG_CTRUNC (and WSAEMSGSIZE when the control buffer was too small),
   MSG_OOB. dwFlags is read at the call (MSG_PEEK). */
typedef INT(PASCAL *LPFN_WSARECVMSG)(SOCKET s, LPWSAMSG lpMsg, LPDWORD lpdwNumberOfBytesRecvd,
                                     LPWSAOVERLAPPED lpOverlapped,
                                     LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine);
/* WSASendMsg: the buffers as one datagram to lpMsg->name (NULL: the
   connected peer) with the control messages of lpMsg->Control (IN_PKTINFO
   / IN6_PKTINFO: the source address; others pass as they are). */
typedef INT(PASCAL *LPFN_WSASENDMSG)(SOCKET s, LPWSAMSG lpMsg, DWORD dwFlags,
                                     LPDWORD lpNumberOfBytesSent, LPWSAOVERLAPPED lpOverlapped,
                                     LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine);
int WSAAPI WSASendMsg(SOCKET Handle, LPWSAMSG lpMsg, DWORD dwFlags, LPDWORD lpNumberOfBytesSent,
                      LPWSAOVERLAPPED lpOverlapped,
                      LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine);

/* WSAIoctl: SIO_GET_EXTENSION_FUNCTION_POINTER (lpvInBuffer: the GUID,
   lpvOutBuffer: the pointer, *lpcbBytesReturned = sizeof(void *)), and
   FIONBIO / FIONREAD (a u_long of 4 bytes, as on Windows). Completes at
   once; lpOverlapped and the routine are not used. Other codes:
   WSAEINVAL. */
int WSAAPI WSAIoctl(SOCKET s, DWORD dwIoControlCode, LPVOID lpvInBuffer, DWORD cbInBuffer,
                    LPVOID lpvOutBuffer, DWORD cbOutBuffer, LPDWORD lpcbBytesReturned,
                    LPWSAOVERLAPPED lpOverlapped,
                    LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine);

/* ------------------------------------------------------------------ */
/* Files.                                                              */
/* ------------------------------------------------------------------ */

#define GENERIC_READ 0x80000000u
#define GENERIC_WRITE 0x40000000u
#define GENERIC_EXECUTE 0x20000000u
#define GENERIC_ALL 0x10000000u
#define FILE_SHARE_READ 0x00000001
#define FILE_SHARE_WRITE 0x00000002
#define FILE_SHARE_DELETE 0x00000004
#define CREATE_NEW 1
#define CREATE_ALWAYS 2
#define OPEN_EXISTING 3
#define OPEN_ALWAYS 4
#define TRUNCATE_EXISTING 5
#define FILE_ATTRIBUTE_READONLY 0x00000001
#define FILE_ATTRIBUTE_NORMAL 0x00000080
#define FILE_ATTRIBUTE_TEMPORARY 0x00000100
#define FILE_FLAG_WRITE_THROUGH 0x80000000u
#define FILE_FLAG_OVERLAPPED 0x40000000
#define FILE_FLAG_NO_BUFFERING 0x20000000
#define FILE_FLAG_RANDOM_ACCESS 0x10000000
#define FILE_FLAG_SEQUENTIAL_SCAN 0x08000000
#define FILE_FLAG_DELETE_ON_CLOSE 0x04000000
#define INVALID_FILE_SIZE ((DWORD)0xFFFFFFFF)
#define ERROR_FILE_NOT_FOUND 2L
#define ERROR_PATH_NOT_FOUND 3L
#define ERROR_FILE_EXISTS 80L
#define ERROR_ALREADY_EXISTS 183L

/* CreateFile: GENERIC_READ / GENERIC_WRITE; CREATE_NEW, CREATE_ALWAYS,
   OPEN_EXISTING, OPEN_ALWAYS, TRUNCATE_EXISTING; FILE_FLAG_OVERLAPPED,
   FILE_FLAG_DELETE_ON_CLOSE. INVALID_HANDLE_VALUE on failure
   (ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND, ERROR_FILE_EXISTS,
   ERROR_ACCESS_DENIED, ...). Needs no WSAStartup. The handle goes to a
   completion port with CreateIoCompletionPort(hFile, port, key, 0). */
HANDLE WINAPI CreateFileA(LPCSTR lpFileName, DWORD dwDesiredAccess, DWORD dwShareMode,
                          LPSECURITY_ATTRIBUTES lpSecurityAttributes,
                          DWORD dwCreationDisposition, DWORD dwFlagsAndAttributes,
                          HANDLE hTemplateFile);
HANDLE WINAPI CreateFileW(const WCHAR *lpFileName, DWORD dwDesiredAccess, DWORD dwShareMode,
                          LPSECURITY_ATTRIBUTES lpSecurityAttributes,
                          DWORD dwCreationDisposition, DWORD dwFlagsAndAttributes,
                          HANDLE hTemplateFile);
#define CreateFile CreateFileA
/* DeleteFile: removes the file (ERROR_FILE_NOT_FOUND, ERROR_ACCESS_DENIED,
   ...). Difference: an open file can be deleted (Linux unlinks it). */
BOOL WINAPI DeleteFileA(LPCSTR lpFileName);
#define DeleteFile DeleteFileA
/* GetTempPath: the directory for temporary files with its trailing '/'
   (Windows: a backslash), from TMPDIR, else /tmp/ (Windows: TMP, TEMP, ...).
   Returns its length without the NUL; when nBufferLength is too small,
   the room needed with the NUL (nothing written). */
DWORD WINAPI GetTempPathA(DWORD nBufferLength, LPSTR lpBuffer);
#define GetTempPath GetTempPathA
#define ERROR_BUFFER_OVERFLOW 111L
/* GetTempFileName: <lpPathName>/<up to 3 chars of lpPrefixString><hex of
   uUnique's low 16 bits>.TMP in lpTempFileName (MAX_PATH bytes). uUnique
   0: picks a number whose file does not exist and creates that file
   (empty), as Windows; otherwise only forms the name. Returns the number;
   0 with ERROR_PATH_NOT_FOUND, ERROR_FILE_EXISTS (every number taken),
   ERROR_BUFFER_OVERFLOW (longer than MAX_PATH), ... */
UINT WINAPI GetTempFileNameA(LPCSTR lpPathName, LPCSTR lpPrefixString, UINT uUnique,
                             LPSTR lpTempFileName);
#define GetTempFileName GetTempFileNameA
/* ReadFile / WriteFile: with an OVERLAPPED, at its Offset/OffsetHigh;
   FALSE with ERROR_IO_PENDING while in flight, reported as a socket's
   operations are (the port's packet with this very LPOVERLAPPED, hEvent,
   GetOverlappedResult). ReadFile at or past the end: ERROR_HANDLE_EOF
   (Internal: STATUS_END_OF_FILE).
   With a NULL OVERLAPPED: at the file pointer, waiting. On a SOCKET: as
   WSARecv / WSASend. */
BOOL WINAPI ReadFile(HANDLE hFile, LPVOID lpBuffer, DWORD nNumberOfBytesToRead,
                     LPDWORD lpNumberOfBytesRead, LPOVERLAPPED lpOverlapped);
BOOL WINAPI WriteFile(HANDLE hFile, LPCVOID lpBuffer, DWORD nNumberOfBytesToWrite,
                      LPDWORD lpNumberOfBytesWritten, LPOVERLAPPED lpOverlapped);
/* GetFileSize / GetFileSizeEx: the file's size (INVALID_FILE_SIZE with
   ERROR_INVALID_HANDLE for a handle that is not a file). */
DWORD WINAPI GetFileSize(HANDLE hFile, LPDWORD lpFileSizeHigh);
BOOL WINAPI GetFileSizeEx(HANDLE hFile, PLARGE_INTEGER lpFileSize);

/* ------------------------------------------------------------------ */
/* Asynchronous procedure calls and waitable timers.                   */
/* ------------------------------------------------------------------ */

typedef VOID(NTAPI *PAPCFUNC)(ULONG_PTR Parameter);
/* QueueUserAPC: pfnAPC(dwData) runs on hThread (GetCurrentThread(), or a
   handle from CreateThread / _beginthreadex) in its next alertable wait,
   which returns WAIT_IO_COMPLETION. 0 with ERROR_INVALID_HANDLE (not a
   thread) or ERROR_GEN_FAILURE (the thread has exited). */
DWORD WINAPI QueueUserAPC(PAPCFUNC pfnAPC, HANDLE hThread, ULONG_PTR dwData);

typedef VOID(CALLBACK *PTIMERAPCROUTINE)(LPVOID lpArgToCompletionRoutine,
                                         DWORD dwTimerLowValue, DWORD dwTimerHighValue);
/* CreateWaitableTimer: names are not supported (NULL only). */
HANDLE WINAPI CreateWaitableTimerA(LPSECURITY_ATTRIBUTES lpTimerAttributes, BOOL bManualReset,
                                   LPCSTR lpTimerName);
HANDLE WINAPI CreateWaitableTimerW(LPSECURITY_ATTRIBUTES lpTimerAttributes, BOOL bManualReset,
                                   const WCHAR *lpTimerName);
#define CreateWaitableTimer CreateWaitableTimerA
/* SetWaitableTimer: *lpDueTime < 0: relative, in 100 ns units; > 0: an
   absolute FILETIME. lPeriod ms (0: once). pfnCompletionRoutine runs in
   an alertable wait of the calling thread, once per period (missed
   periods coalesce into one run); fResume is ignored. */
BOOL WINAPI SetWaitableTimer(HANDLE hTimer, const LARGE_INTEGER *lpDueTime, LONG lPeriod,
                             PTIMERAPCROUTINE pfnCompletionRoutine,
                             LPVOID lpArgToCompletionRoutine, BOOL fResume);
/* CancelWaitableTimer: no more runs, not even one already due. */
BOOL WINAPI CancelWaitableTimer(HANDLE hTimer);

#ifdef __cplusplus
}
#endif

#endif /* OVERLAPPED_EXT_H */
