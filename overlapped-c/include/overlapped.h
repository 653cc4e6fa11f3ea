/*
 * overlapped.h — the Winsock overlapped I/O and completion-port API on
 * Linux (the `overlapped` library's C interface, liboverlapped_c).
 *
 * A program written for Windows includes <winsock2.h>, <windows.h>,
 * <ws2tcpip.h>, <mswsock.h> or <process.h> (or <winsock.h>, <winerror.h>,
 * <windef.h>, <winbase.h>, <winnt.h>, <ws2def.h>); with this directory on
 * the include path each of those names includes this header (and
 * <tchar.h> gives the ANSI generic-text names), so the program compiles
 * unchanged:
 *
 *     cc -Wall -Werror -I overlapped-c/include prog.c \
 *        -L target/debug -loverlapped_c -Wl,-rpath,$PWD/target/debug
 *
 * (or link target/debug/liboverlapped_c.a with -lpthread -ldl -lm).
 * OVERLAPPED_ENGINE=uring|poll|auto picks the engine at run time.
 *
 * ---------------------------------------------------------------------
 * THE CONTRACT (Windows' own; what the caller keeps alive, and until when)
 * ---------------------------------------------------------------------
 *
 * - An overlapped call (WSASend, WSARecv, WSASendTo, WSARecvFrom with a
 *   non-NULL lpOverlapped) that returns 0 or fails with WSA_IO_PENDING has
 *   an operation in flight. Until its completion is REPORTED, the caller
 *   keeps valid and untouched:
 *     * the OVERLAPPED structure itself,
 *     * the memory every WSABUF points at (the WSABUF array may go when
 *       the call returns: it is copied),
 *     * for WSARecvFrom, lpFrom and lpFromlen.
 *   A completion is reported when: GetQueuedCompletionStatus(Ex) returns
 *   its OVERLAPPED (sockets associated with a port); its completion
 *   routine is called (then the OVERLAPPED may be reused or freed inside
 *   the routine); a wait returns its event, or WSAGetOverlappedResult /
 *   GetOverlappedResult / HasOverlappedIoCompleted says it is complete
 *   (operations with an event, or with none).
 *   A call that fails with any other error started nothing: nothing will
 *   complete, nothing is kept.
 * - closesocket() does not end that duty: it completes the socket's
 *   pending operations ABORTED (WSA_OPERATION_ABORTED, or WSAECONNABORTED
 *   for a TCP receive), and they are reported as usual.
 * - One OVERLAPPED serves one operation at a time: starting a second
 *   operation on an OVERLAPPED whose operation is still in flight fails
 *   with WSAEINVAL (Windows does not check; here it is detected).
 * - Internal (an NTSTATUS: STATUS_PENDING while in flight), InternalHigh
 *   (the byte count) and Offset (the receive flags, MSG_OOB) are written
 *   before the completion is reported: before the routine runs, before
 *   GetQueuedCompletionStatus returns the pointer, before a wait returns
 *   the event or WSAGetOverlappedResult answers.
 * - hEvent: with a completion routine it is the program's own value (the
 *   library never reads it as a handle). Otherwise, when it is an event,
 *   the event is reset at the start and set on completion (for an
 *   operation that posts a port packet: when the packet is taken); on a
 *   socket associated with a port, an hEvent with its low bit set means
 *   "no packet" (the event alone reports the completion), as on Windows.
 * - SOCKET and HANDLE values are keys in the library's table, never file
 *   descriptors. A closed or unknown SOCKET is WSAENOTSOCK, a closed or
 *   unknown HANDLE ERROR_INVALID_HANDLE: never a crash, never another
 *   object that reused the number (values are not reused).
 * - Detected misuse is an error code, not a crash: a zero buffer count
 *   (WSAEINVAL), a NULL WSABUF array (WSAEFAULT), a NULL lpFlags
 *   (WSAEFAULT), a completion routine with a NULL OVERLAPPED (WSAEINVAL),
 *   a NULL OVERLAPPED or byte-count pointer to WSAGetOverlappedResult
 *   (WSAEFAULT), an hEvent that is not an event (WSA_INVALID_HANDLE).
 *   Pointers that are non-NULL but invalid cannot be detected.
 * - Completion routines run only on the thread that started the
 *   operation, inside its alertable wait: SleepEx(.., TRUE),
 *   WSAWaitForMultipleEvents(.., TRUE), WaitFor*ObjectEx(.., TRUE).
 *   dwError is the Winsock code (0 on success).
 *
 * Where this differs from Windows (all documented at the call):
 * - AF_INET6 and the sockaddr structures are the system's (AF_INET6 is 10,
 *   not 23; the layouts are Windows'). SOL_SOCKET, SO_*, MSG_*, IP_PKTINFO,
 *   IPV6_PKTINFO, IPV6_V6ONLY, FIONBIO and FIONREAD have Windows' values.
 * - WSAGetOverlappedResult with fWait on an operation with no event waits
 *   on a private event (Windows waits on the socket handle; a socket is a
 *   waitable object here too, see WaitForSingleObject).
 * - CancelIo cancels every pending operation of the socket, not only the
 *   calling thread's.
 * - The extension functions (WSAIoctl with SIO_GET_EXTENSION_FUNCTION_
 *   POINTER: AcceptEx, ConnectEx, DisconnectEx, TransmitFile, WSARecvMsg;
 *   WSASendMsg), overlapped files, QueueUserAPC and waitable timers are in
 *   overlapped_ext.h (included below), with what they keep alive.
 * - WSAEventSelect needs no thread of its own: a wait on its event
 *   watches the socket (see the call).
 * - Unknown pragmas (#pragma comment(lib, "ws2_32.lib")) are not warned
 *   about in a file that includes this header.
 */
#ifndef OVERLAPPED_H
#define OVERLAPPED_H

#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>

#pragma GCC diagnostic ignored "-Wunknown-pragmas"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Win32 base types (LLP64 sizes: DWORD, LONG and ULONG are 32 bits).  */
/* ------------------------------------------------------------------ */

#define WINAPI
#define CALLBACK
#define APIENTRY
#define WSAAPI
#define __stdcall
#define __cdecl
#define VOID void
#define CONST const
#define IN
#define OUT
#define OPTIONAL

typedef int BOOL;
typedef BOOL *PBOOL, *LPBOOL;
typedef unsigned char BYTE, UCHAR, BOOLEAN, *PBYTE, *LPBYTE;
typedef char CHAR, *PCHAR, *LPSTR, *PSTR;
typedef const char *LPCSTR, *PCSTR;
typedef uint16_t WCHAR;
typedef short SHORT;
typedef unsigned short WORD, USHORT, *PWORD, *LPWORD;
typedef int INT, *PINT, *LPINT;
typedef unsigned int UINT, *PUINT;
typedef int32_t LONG, *PLONG, *LPLONG;
typedef uint32_t ULONG, DWORD, *PULONG, *PDWORD, *LPDWORD;
typedef int64_t LONGLONG, LONG64;
typedef uint64_t ULONGLONG, DWORD64, ULONG64;
typedef intptr_t INT_PTR, LONG_PTR, SSIZE_T;
typedef uintptr_t UINT_PTR, ULONG_PTR, DWORD_PTR, SIZE_T, *PULONG_PTR, *PSIZE_T;
typedef void *PVOID, *LPVOID, *HANDLE, **PHANDLE, **LPHANDLE;
typedef const void *LPCVOID;
typedef HANDLE HMODULE, HINSTANCE;

typedef union _LARGE_INTEGER {
    struct {
        DWORD LowPart;
        LONG HighPart;
    };
    LONGLONG QuadPart;
} LARGE_INTEGER, *PLARGE_INTEGER;

typedef struct _GUID {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t Data4[8];
} GUID, *LPGUID;

typedef struct _SECURITY_ATTRIBUTES {
    DWORD nLength;
    LPVOID lpSecurityDescriptor;
    BOOL bInheritHandle;
} SECURITY_ATTRIBUTES, *PSECURITY_ATTRIBUTES, *LPSECURITY_ATTRIBUTES;

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif
#define INFINITE 0xFFFFFFFFu
#define MAX_PATH 260
#define INVALID_HANDLE_VALUE ((HANDLE)(LONG_PTR)-1)
#define MAKEWORD(a, b) ((WORD)(((BYTE)(a)) | (((WORD)((BYTE)(b))) << 8)))
#define MAKELONG(a, b) ((LONG)(((WORD)(a)) | (((DWORD)((WORD)(b))) << 16)))
#define LOBYTE(w) ((BYTE)((w) & 0xff))
#define HIBYTE(w) ((BYTE)(((w) >> 8) & 0xff))
#define LOWORD(l) ((WORD)((l) & 0xffff))
#define HIWORD(l) ((WORD)(((l) >> 16) & 0xffff))
#define FIELD_OFFSET(type, field) ((LONG)offsetof(type, field))
#define CONTAINING_RECORD(address, type, field) \
    ((type *)((char *)(address) - offsetof(type, field)))
#define UNREFERENCED_PARAMETER(p) ((void)(p))

#define ZeroMemory(d, n) memset((d), 0, (n))
#define SecureZeroMemory(d, n) memset((d), 0, (n))
#define CopyMemory(d, s, n) memcpy((d), (s), (n))
#define MoveMemory(d, s, n) memmove((d), (s), (n))
#define FillMemory(d, n, v) memset((d), (v), (n))
#if !defined(NOMINMAX) && !defined(__cplusplus)
#ifndef min
#define min(a, b) (((a) < (b)) ? (a) : (b))
#endif
#ifndef max
#define max(a, b) (((a) > (b)) ? (a) : (b))
#endif
#endif

/* ------------------------------------------------------------------ */
/* Error codes (Windows' numbers).                                     */
/* ------------------------------------------------------------------ */

#define ERROR_SUCCESS 0L
#define NO_ERROR 0L
#define ERROR_ACCESS_DENIED 5L
#define ERROR_INVALID_HANDLE 6L
#define ERROR_NOT_ENOUGH_MEMORY 8L
#define ERROR_GEN_FAILURE 31L
#define ERROR_HANDLE_EOF 38L
#define ERROR_NOT_SUPPORTED 50L
#define ERROR_NETNAME_DELETED 64L
#define ERROR_INVALID_PARAMETER 87L
#define ERROR_SEM_TIMEOUT 121L
#define ERROR_PIPE_NOT_CONNECTED 233L
#define ERROR_MORE_DATA 234L
#define ERROR_ABANDONED_WAIT_0 735L
#define ERROR_OPERATION_ABORTED 995L
#define ERROR_IO_INCOMPLETE 996L
#define ERROR_IO_PENDING 997L
#define ERROR_NOACCESS 998L
#define ERROR_NOT_FOUND 1168L
#define ERROR_CONNECTION_REFUSED 1225L
#define ERROR_CONNECTION_INVALID 1229L
#define ERROR_CONNECTION_ACTIVE 1230L
#define ERROR_NETWORK_UNREACHABLE 1231L
#define ERROR_HOST_UNREACHABLE 1232L
#define ERROR_PORT_UNREACHABLE 1234L
#define ERROR_CONNECTION_ABORTED 1236L
#define ERROR_NO_SYSTEM_RESOURCES 1450L

#define WSA_INVALID_HANDLE 6
#define WSA_NOT_ENOUGH_MEMORY 8
#define WSA_INVALID_PARAMETER 87
#define WSA_OPERATION_ABORTED 995
#define WSA_IO_INCOMPLETE 996
#define WSA_IO_PENDING 997
#define WSABASEERR 10000
#define WSAEINTR 10004
#define WSAEBADF 10009
#define WSAEACCES 10013
#define WSAEFAULT 10014
#define WSAEINVAL 10022
#define WSAEMFILE 10024
#define WSAEWOULDBLOCK 10035
#define WSAEINPROGRESS 10036
#define WSAEALREADY 10037
#define WSAENOTSOCK 10038
#define WSAEDESTADDRREQ 10039
#define WSAEMSGSIZE 10040
#define WSAEPROTOTYPE 10041
#define WSAENOPROTOOPT 10042
#define WSAEPROTONOSUPPORT 10043
#define WSAESOCKTNOSUPPORT 10044
#define WSAEOPNOTSUPP 10045
#define WSAEPFNOSUPPORT 10046
#define WSAEAFNOSUPPORT 10047
#define WSAEADDRINUSE 10048
#define WSAEADDRNOTAVAIL 10049
#define WSAENETDOWN 10050
#define WSAENETUNREACH 10051
#define WSAENETRESET 10052
#define WSAECONNABORTED 10053
#define WSAECONNRESET 10054
#define WSAENOBUFS 10055
#define WSAEISCONN 10056
#define WSAENOTCONN 10057
#define WSAESHUTDOWN 10058
#define WSAETOOMANYREFS 10059
#define WSAETIMEDOUT 10060
#define WSAECONNREFUSED 10061
#define WSAELOOP 10062
#define WSAENAMETOOLONG 10063
#define WSAEHOSTDOWN 10064
#define WSAEHOSTUNREACH 10065
#define WSASYSNOTREADY 10091
#define WSAVERNOTSUPPORTED 10092
#define WSANOTINITIALISED 10093
#define WSAEDISCON 10101
#define WSASYSCALLFAILURE 10107

/* NTSTATUS values Internal holds. */
#define STATUS_SUCCESS ((DWORD)0x00000000L)
#define STATUS_PENDING ((DWORD)0x00000103L)
#define STATUS_BUFFER_OVERFLOW ((DWORD)0x80000005L)
#define STATUS_END_OF_FILE ((DWORD)0xC0000011L) /* a file read at its end */
#define STATUS_CANCELLED ((DWORD)0xC0000120L)
#define STATUS_CONNECTION_RESET ((DWORD)0xC000020DL)
#define STATUS_CONNECTION_ABORTED ((DWORD)0xC0000241L)

/* Waits. */
#define WAIT_OBJECT_0 0x00000000u
#define WAIT_ABANDONED 0x00000080u
#define WAIT_IO_COMPLETION 0x000000C0u
#define WAIT_TIMEOUT 258u
#define WAIT_FAILED 0xFFFFFFFFu
#define MAXIMUM_WAIT_OBJECTS 64
#define STILL_ACTIVE 259
#define WSA_WAIT_EVENT_0 WAIT_OBJECT_0
#define WSA_WAIT_IO_COMPLETION WAIT_IO_COMPLETION
#define WSA_WAIT_TIMEOUT WAIT_TIMEOUT
#define WSA_WAIT_FAILED WAIT_FAILED
#define WSA_INFINITE INFINITE
#define WSA_MAXIMUM_WAIT_EVENTS MAXIMUM_WAIT_OBJECTS

/* ------------------------------------------------------------------ */
/* Winsock types.                                                      */
/* ------------------------------------------------------------------ */

typedef UINT_PTR SOCKET;
#define INVALID_SOCKET ((SOCKET)(~0))
#define SOCKET_ERROR (-1)
typedef unsigned int GROUP;
typedef HANDLE WSAEVENT, *LPWSAEVENT;
#define WSA_INVALID_EVENT ((WSAEVENT)NULL)

typedef struct sockaddr SOCKADDR, *PSOCKADDR, *LPSOCKADDR;
typedef struct sockaddr_in SOCKADDR_IN, *PSOCKADDR_IN, *LPSOCKADDR_IN;
typedef struct sockaddr_in6 SOCKADDR_IN6, *PSOCKADDR_IN6, *LPSOCKADDR_IN6;
typedef struct sockaddr_storage SOCKADDR_STORAGE, *PSOCKADDR_STORAGE, *LPSOCKADDR_STORAGE;
typedef struct in_addr IN_ADDR, *PIN_ADDR, *LPIN_ADDR;
typedef struct in6_addr IN6_ADDR, *PIN6_ADDR;
typedef struct addrinfo ADDRINFOA, *PADDRINFOA;
typedef struct linger LINGER, *PLINGER;
typedef struct timeval TIMEVAL;

typedef struct _OVERLAPPED {
    ULONG_PTR Internal;     /* NTSTATUS; STATUS_PENDING while in flight */
    ULONG_PTR InternalHigh; /* bytes transferred */
    union {
        struct {
            DWORD Offset;     /* receive flags once complete (MSG_OOB) */
            DWORD OffsetHigh;
        };
        PVOID Pointer;
    };
    HANDLE hEvent;
} OVERLAPPED, *LPOVERLAPPED;

typedef OVERLAPPED WSAOVERLAPPED;
typedef LPOVERLAPPED LPWSAOVERLAPPED;

typedef struct _OVERLAPPED_ENTRY {
    ULONG_PTR lpCompletionKey;
    LPOVERLAPPED lpOverlapped;
    ULONG_PTR Internal;
    DWORD dwNumberOfBytesTransferred;
} OVERLAPPED_ENTRY, *LPOVERLAPPED_ENTRY;

typedef struct _WSABUF {
    ULONG len;
    CHAR *buf;
} WSABUF, *LPWSABUF;

#define WSADESCRIPTION_LEN 256
#define WSASYS_STATUS_LEN 128
typedef struct WSAData {
    WORD wVersion;
    WORD wHighVersion;
    unsigned short iMaxSockets;
    unsigned short iMaxUdpDg;
    char *lpVendorInfo;
    char szDescription[WSADESCRIPTION_LEN + 1];
    char szSystemStatus[WSASYS_STATUS_LEN + 1];
} WSADATA, *LPWSADATA;

typedef struct _WSAPROTOCOL_INFOA WSAPROTOCOL_INFOA, *LPWSAPROTOCOL_INFOA;
typedef struct _WSAPROTOCOL_INFOW WSAPROTOCOL_INFOW, *LPWSAPROTOCOL_INFOW;

typedef void(CALLBACK *LPWSAOVERLAPPED_COMPLETION_ROUTINE)(
    DWORD dwError, DWORD cbTransferred, LPWSAOVERLAPPED lpOverlapped, DWORD dwFlags);

/* ------------------------------------------------------------------ */
/* Winsock constants with Windows' values.                             */
/* ------------------------------------------------------------------ */

#define WSA_FLAG_OVERLAPPED 0x01

#define SD_RECEIVE 0x00
#define SD_SEND 0x01
#define SD_BOTH 0x02

#undef MSG_WAITALL
#undef MSG_TRUNC
#undef MSG_CTRUNC
#define MSG_WAITALL 0x8
#define MSG_PARTIAL 0x8000
#define MSG_TRUNC 0x0100
#define MSG_CTRUNC 0x0200
/* MSG_OOB (1), MSG_PEEK (2), MSG_DONTROUTE (4): the same on both. */

#undef SOL_SOCKET
#undef SO_REUSEADDR
#undef SO_KEEPALIVE
#undef SO_BROADCAST
#undef SO_LINGER
#undef SO_OOBINLINE
#undef SO_SNDBUF
#undef SO_RCVBUF
#undef SO_SNDTIMEO
#undef SO_RCVTIMEO
#undef SO_ERROR
#undef SO_TYPE
#define SOL_SOCKET 0xffff
#define SO_REUSEADDR 0x0004
#define SO_KEEPALIVE 0x0008
#define SO_BROADCAST 0x0020
#define SO_LINGER 0x0080
#define SO_OOBINLINE 0x0100
#define SO_SNDBUF 0x1001
#define SO_RCVBUF 0x1002
#define SO_SNDTIMEO 0x1005 /* DWORD milliseconds */
#define SO_RCVTIMEO 0x1006 /* DWORD milliseconds */
#define SO_ERROR 0x1007
#define SO_TYPE 0x1008
#define SO_UPDATE_ACCEPT_CONTEXT 0x700B
#define SO_UPDATE_CONNECT_CONTEXT 0x7010

#undef IP_PKTINFO
#undef IPV6_PKTINFO
#undef IPV6_V6ONLY
#define IP_PKTINFO 19
#define IPV6_PKTINFO 19
#define IPV6_V6ONLY 27
/* TCP_NODELAY (1) and the IPPROTO_* values are the same on both. */

#undef FIONBIO
#undef FIONREAD
#define FIONBIO ((long)0x8004667EL)
#define FIONREAD ((long)0x4004667FL)

#define FILE_SKIP_COMPLETION_PORT_ON_SUCCESS 0x1
#define FILE_SKIP_SET_EVENT_ON_HANDLE 0x2

#define InetPtonA inet_pton
#define InetNtopA inet_ntop
#define InetPton inet_pton
#define InetNtop inet_ntop

/* ------------------------------------------------------------------ */
/* Winsock calls. The BSD names are macros for ovl_* symbols, so the   */
/* C library's own socket calls stay untouched in the process.         */
/* ------------------------------------------------------------------ */

/* WSAStartup: versions 1.0 to 2.2 as requested (higher: 2.2); makes the
   engine. Returns 0, WSAVERNOTSUPPORTED (below 1.0) or WSASYSNOTREADY
   (no engine can run: szSystemStatus says why). Calls before it fail with
   WSANOTINITIALISED. */
int WSAAPI WSAStartup(WORD wVersionRequested, LPWSADATA lpWSAData);
/* WSACleanup: the last one closes every socket still open. */
int WSAAPI WSACleanup(void);
/* WSAGetLastError / GetLastError (and WSASetLastError / SetLastError):
   one per-thread value, Windows codes; the Winsock and Win32 calls share
   it, as on Windows. */
int WSAAPI WSAGetLastError(void);
void WSAAPI WSASetLastError(int iError);
DWORD WINAPI GetLastError(void);
void WINAPI SetLastError(DWORD dwErrCode);

/* WSASocket: AF_INET/AF_INET6, SOCK_STREAM/SOCK_DGRAM. Every socket can
   take overlapped calls (WSA_FLAG_OVERLAPPED or not). lpProtocolInfo must
   be NULL and g 0. */
SOCKET WSAAPI WSASocketA(int af, int type, int protocol, LPWSAPROTOCOL_INFOA lpProtocolInfo,
                         GROUP g, DWORD dwFlags);
SOCKET WSAAPI WSASocketW(int af, int type, int protocol, LPWSAPROTOCOL_INFOW lpProtocolInfo,
                         GROUP g, DWORD dwFlags);
#define WSASocket WSASocketA
/* socket: as WSASocket. */
SOCKET WSAAPI ovl_socket(int af, int type, int protocol);
#define socket ovl_socket
/* closesocket: pending operations complete aborted (and are reported). */
int WSAAPI closesocket(SOCKET s);
/* bind: AF_INET / AF_INET6 addresses (WSAEFAULT for a namelen too short,
   WSAEAFNOSUPPORT for another family); the system's errors as their
   Winsock codes (WSAEADDRINUSE, WSAEADDRNOTAVAIL, ...). */
int WSAAPI ovl_bind(SOCKET s, const struct sockaddr *name, int namelen);
#define bind ovl_bind
/* listen: SOMAXCONN and larger mean the system's default. */
int WSAAPI ovl_listen(SOCKET s, int backlog);
#define listen ovl_listen
/* accept: blocks; on a socket with FIONBIO set, WSAEWOULDBLOCK when no
   connection is there (no connection is lost to that answer). */
SOCKET WSAAPI ovl_accept(SOCKET s, struct sockaddr *addr, int *addrlen);
#define accept ovl_accept
/* connect: blocks; with FIONBIO, WSAEWOULDBLOCK, then WSAEALREADY while in
   progress and WSAEISCONN once connected. */
int WSAAPI ovl_connect(SOCKET s, const struct sockaddr *name, int namelen);
#define connect ovl_connect
/* shutdown: SD_RECEIVE, SD_SEND, SD_BOTH. */
int WSAAPI ovl_shutdown(SOCKET s, int how);
#define shutdown ovl_shutdown
/* send / recv / sendto / recvfrom: the non-overlapped calls. They block
   (SO_SNDTIMEO / SO_RCVTIMEO bound them: WSAETIMEDOUT) unless FIONBIO is
   set (WSAEWOULDBLOCK). They run in order with the overlapped calls. A
   truncated datagram is WSAEMSGSIZE with the buffer filled. */
int WSAAPI ovl_send(SOCKET s, const char *buf, int len, int flags);
#define send ovl_send
int WSAAPI ovl_recv(SOCKET s, char *buf, int len, int flags);
#define recv ovl_recv
int WSAAPI ovl_sendto(SOCKET s, const char *buf, int len, int flags, const struct sockaddr *to,
                      int tolen);
#define sendto ovl_sendto
int WSAAPI ovl_recvfrom(SOCKET s, char *buf, int len, int flags, struct sockaddr *from,
                        int *fromlen);
#define recvfrom ovl_recvfrom
/* getsockname / getpeername: the address and *namelen as Winsock writes
   them (WSAEFAULT when *namelen is too small; getpeername of an
   unconnected socket: WSAENOTCONN). */
int WSAAPI ovl_getsockname(SOCKET s, struct sockaddr *name, int *namelen);
#define getsockname ovl_getsockname
int WSAAPI ovl_getpeername(SOCKET s, struct sockaddr *name, int *namelen);
#define getpeername ovl_getpeername
/* setsockopt / getsockopt (Windows' levels and names; BOOL/DWORD values):
   SO_REUSEADDR, SO_KEEPALIVE, SO_BROADCAST, SO_OOBINLINE, SO_SNDBUF,
   SO_RCVBUF, SO_LINGER (Windows' two u_shorts, or the system's struct
   linger), SO_RCVTIMEO/SO_SNDTIMEO (milliseconds, for the non-overlapped
   calls), SO_UPDATE_ACCEPT_CONTEXT/SO_UPDATE_CONNECT_CONTEXT (accepted;
   nothing to update on Linux), TCP_NODELAY, IP_PKTINFO, IPV6_PKTINFO,
   IPV6_V6ONLY; getsockopt also SO_ERROR (a Winsock code) and SO_TYPE.
   Other options: WSAENOPROTOOPT; other levels: WSAEINVAL. */
int WSAAPI ovl_setsockopt(SOCKET s, int level, int optname, const char *optval, int optlen);
#define setsockopt ovl_setsockopt
int WSAAPI ovl_getsockopt(SOCKET s, int level, int optname, char *optval, int *optlen);
#define getsockopt ovl_getsockopt
/* ioctlsocket: FIONBIO (the non-overlapped calls stop blocking) and
   FIONREAD. */
int WSAAPI ioctlsocket(SOCKET s, long cmd, u_long *argp);
typedef struct _QualityOfService QOS, *LPQOS;
typedef int(CALLBACK *LPCONDITIONPROC)(LPWSABUF lpCallerId, LPWSABUF lpCallerData, LPQOS lpSQOS,
                                       LPQOS lpGQOS, LPWSABUF lpCalleeId,
                                       LPWSABUF lpCalleeData, GROUP *g,
                                       DWORD_PTR dwCallbackData);
/* WSAAccept: accept; a condition function is not supported
   (WSAEOPNOTSUPP). */
SOCKET WSAAPI WSAAccept(SOCKET s, struct sockaddr *addr, LPINT addrlen,
                        LPCONDITIONPROC lpfnCondition, DWORD_PTR dwCallbackData);
/* WSAAddressToStringA: "a.b.c.d:port", "[v6%scope]:port" (no port when it
   is 0); WSAEFAULT with the length needed in *lpdwAddressStringLength when
   the buffer is too small. */
int WSAAPI WSAAddressToStringA(LPSOCKADDR lpsaAddress, DWORD dwAddressLength,
                               LPWSAPROTOCOL_INFOA lpProtocolInfo, LPSTR lpszAddressString,
                               LPDWORD lpdwAddressStringLength);
#define WSAAddressToString WSAAddressToStringA

/* ------------------------------------------------------------------ */
/* Overlapped calls.                                                   */
/* ------------------------------------------------------------------ */

/* WSASend / WSARecv / WSASendTo / WSARecvFrom.
   lpOverlapped NULL: a non-overlapped call (blocks like send/recv).
   Otherwise returns 0 when the operation completed at once (the byte
   count is in *lpNumberOfBytes... and the completion is STILL reported:
   the event is set, the routine queued, the port packet posted unless
   FILE_SKIP_COMPLETION_PORT_ON_SUCCESS), or SOCKET_ERROR with
   WSAGetLastError() == WSA_IO_PENDING (in flight), or SOCKET_ERROR with
   another code (nothing started). How the completion is reported: a
   completion routine if given (run in the starting thread's alertable
   wait); else a packet on the socket's completion port (tag: this very
   LPOVERLAPPED) if it has one and hEvent's low bit is clear; else hEvent
   (may be NULL). See THE CONTRACT above for what stays alive. */
int WSAAPI WSASend(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount, LPDWORD lpNumberOfBytesSent,
                   DWORD dwFlags, LPWSAOVERLAPPED lpOverlapped,
                   LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine);
/* *lpFlags is read at the call (MSG_PEEK, MSG_OOB, MSG_WAITALL) and
   written on an immediate completion. */
int WSAAPI WSARecv(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount, LPDWORD lpNumberOfBytesRecvd,
                   LPDWORD lpFlags, LPWSAOVERLAPPED lpOverlapped,
                   LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine);
int WSAAPI WSASendTo(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount,
                     LPDWORD lpNumberOfBytesSent, DWORD dwFlags, const struct sockaddr *lpTo,
                     int iTolen, LPWSAOVERLAPPED lpOverlapped,
                     LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine);
/* lpFrom / lpFromlen are written when the operation completes: keep them
   alive until then. */
int WSAAPI WSARecvFrom(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount,
                       LPDWORD lpNumberOfBytesRecvd, LPDWORD lpFlags, struct sockaddr *lpFrom,
                       LPINT lpFromlen, LPWSAOVERLAPPED lpOverlapped,
                       LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine);

/* WSAGetOverlappedResult: TRUE with the byte count (and the flags, from
   Offset) of a successful operation; FALSE with WSAGetLastError() = its
   Winsock code (WSA_IO_INCOMPLETE while in flight and fWait is FALSE;
   WSAEMSGSIZE for a truncated datagram). fWait TRUE waits for the
   completion (for an operation reported by a routine or a port: until the
   routine ran or the packet was taken). */
BOOL WSAAPI WSAGetOverlappedResult(SOCKET s, LPWSAOVERLAPPED lpOverlapped, LPDWORD lpcbTransfer,
                                   BOOL fWait, LPDWORD lpdwFlags);
/* GetOverlappedResult: the same with the Win32 code
   (ERROR_NETNAME_DELETED for a reset, ERROR_OPERATION_ABORTED, ...). */
BOOL WINAPI GetOverlappedResult(HANDLE hFile, LPOVERLAPPED lpOverlapped,
                                LPDWORD lpNumberOfBytesTransferred, BOOL bWait);
/* HasOverlappedIoCompleted: a call here (Windows' macro reads Internal). */
BOOL ovl_HasOverlappedIoCompleted(LPOVERLAPPED lpOverlapped);
#define HasOverlappedIoCompleted(lpOverlapped) ovl_HasOverlappedIoCompleted(lpOverlapped)

/* CancelIoEx: cancels the operation on lpOverlapped (all of the socket's
   or file's when NULL); ERROR_NOT_FOUND when none is pending,
   ERROR_INVALID_HANDLE for a handle that is neither. The operation still
   completes (aborted, or normally if it won the race) and is reported. */
BOOL WINAPI CancelIoEx(HANDLE hFile, LPOVERLAPPED lpOverlapped);
/* CancelIo: every pending operation of the socket or file. Difference:
   Windows cancels only those the calling thread started; here, all
   threads'. */
BOOL WINAPI CancelIo(HANDLE hFile);
/* SetFileCompletionNotificationModes (sockets): FILE_SKIP_COMPLETION_PORT_
   ON_SUCCESS (an immediate success posts no packet) and
   FILE_SKIP_SET_EVENT_ON_HANDLE (the socket's completions no longer
   signal the socket handle in WaitFor*Object(s); an operation's own
   hEvent still is). Both one-way, as on Windows. */
BOOL WINAPI SetFileCompletionNotificationModes(HANDLE FileHandle, UCHAR Flags);

/* ------------------------------------------------------------------ */
/* Events and waits.                                                   */
/* ------------------------------------------------------------------ */

/* WSACreateEvent: manual-reset, not set. */
WSAEVENT WSAAPI WSACreateEvent(void);
/* WSACloseEvent: the handle goes; operations still bound to the event
   complete as before. WSASetEvent / WSAResetEvent (and SetEvent /
   ResetEvent): FALSE with WSA_INVALID_HANDLE for a handle that is not an
   event. */
BOOL WSAAPI WSACloseEvent(WSAEVENT hEvent);
BOOL WSAAPI WSASetEvent(WSAEVENT hEvent);
BOOL WSAAPI WSAResetEvent(WSAEVENT hEvent);
/* WSAWaitForMultipleEvents: up to 64 events; WSA_WAIT_EVENT_0 + i (the
   lowest set index), WSA_WAIT_TIMEOUT, WSA_WAIT_IO_COMPLETION (fAlertable:
   completion routines of this thread ran) or WSA_WAIT_FAILED. */
DWORD WSAAPI WSAWaitForMultipleEvents(DWORD cEvents, const WSAEVENT *lphEvents, BOOL fWaitAll,
                                      DWORD dwTimeout, BOOL fAlertable);
/* WSAEventSelect: the socket records the network events of lNetworkEvents
   (FD_READ, FD_WRITE, FD_OOB, FD_ACCEPT, FD_CONNECT, FD_CLOSE) as they
   happen and sets hEventObject for each; WSAEnumNetworkEvents reports and
   clears the record. As on Windows: the socket becomes non-blocking
   (ioctlsocket FIONBIO 0 is then WSAEINVAL); a second call replaces the
   first; lNetworkEvents 0 cancels (hEventObject is then ignored); events
   that already hold are recorded at once (a waiting connection, waiting
   data, FD_WRITE on a connected socket); an event is recorded once, then
   not again until its re-enabling call, made even if it fails: recv /
   WSARecv (any receive) for FD_READ, a MSG_OOB receive for FD_OOB,
   accept / AcceptEx for FD_ACCEPT, a send that fails with
   WSAEWOULDBLOCK (or goes pending) for FD_WRITE; FD_CONNECT (each
   connect's end, with its error in iErrorCode[FD_CONNECT_BIT]) and
   FD_CLOSE (0 once the data before a graceful close was received;
   WSAECONNRESET / WSAECONNABORTED) are told once. Data taken by a pending
   overlapped receive raises no FD_READ, a connection taken by a pending
   AcceptEx no FD_ACCEPT. A socket made by accept() takes its listener's
   selection (call WSAEventSelect on it to give it its own). FD_QOS,
   FD_GROUP_QOS, FD_ROUTING_INTERFACE_CHANGE and FD_ADDRESS_LIST_CHANGE
   are accepted and never recorded (their ioctls do not exist here); other
   bits are WSAEINVAL, as is an hEventObject that is not an event.
   Difference: no thread watches the socket; a wait on the event
   (WSAWaitForMultipleEvents, WaitFor*Object(s)(Ex)) watches the sockets
   selected into it while it blocks, and WSAEventSelect /
   WSAEnumNetworkEvents look at the socket themselves. */
#define FD_READ_BIT 0
#define FD_READ (1 << FD_READ_BIT)
#define FD_WRITE_BIT 1
#define FD_WRITE (1 << FD_WRITE_BIT)
#define FD_OOB_BIT 2
#define FD_OOB (1 << FD_OOB_BIT)
#define FD_ACCEPT_BIT 3
#define FD_ACCEPT (1 << FD_ACCEPT_BIT)
#define FD_CONNECT_BIT 4
#define FD_CONNECT (1 << FD_CONNECT_BIT)
#define FD_CLOSE_BIT 5
#define FD_CLOSE (1 << FD_CLOSE_BIT)
#define FD_QOS_BIT 6
#define FD_QOS (1 << FD_QOS_BIT)
#define FD_GROUP_QOS_BIT 7
#define FD_GROUP_QOS (1 << FD_GROUP_QOS_BIT)
#define FD_ROUTING_INTERFACE_CHANGE_BIT 8
#define FD_ROUTING_INTERFACE_CHANGE (1 << FD_ROUTING_INTERFACE_CHANGE_BIT)
#define FD_ADDRESS_LIST_CHANGE_BIT 9
#define FD_ADDRESS_LIST_CHANGE (1 << FD_ADDRESS_LIST_CHANGE_BIT)
#define FD_MAX_EVENTS 10
#define FD_ALL_EVENTS ((1 << FD_MAX_EVENTS) - 1)
typedef struct _WSANETWORKEVENTS {
    LONG lNetworkEvents;
    int iErrorCode[FD_MAX_EVENTS];
} WSANETWORKEVENTS, *LPWSANETWORKEVENTS;
int WSAAPI WSAEventSelect(SOCKET s, WSAEVENT hEventObject, long lNetworkEvents);
/* WSAEnumNetworkEvents: the events recorded since the last call in
   lNetworkEvents, the Winsock code of each in iErrorCode[FD_*_BIT] (0:
   none; other entries 0); the record is cleared and hEventObject
   (optional, NULL: none) reset in the same step. Enumerating re-enables
   nothing. WSAENOTSOCK, WSAEFAULT (lpNetworkEvents NULL), WSAEINVAL
   (hEventObject not an event). */
int WSAAPI WSAEnumNetworkEvents(SOCKET s, WSAEVENT hEventObject,
                                LPWSANETWORKEVENTS lpNetworkEvents);

/* CreateEvent: names are not supported (NULL only); an auto-reset event
   is reset by the wait that returns it. */
HANDLE WINAPI CreateEventA(LPSECURITY_ATTRIBUTES lpEventAttributes, BOOL bManualReset,
                           BOOL bInitialState, LPCSTR lpName);
HANDLE WINAPI CreateEventW(LPSECURITY_ATTRIBUTES lpEventAttributes, BOOL bManualReset,
                           BOOL bInitialState, const WCHAR *lpName);
#define CreateEvent CreateEventA
BOOL WINAPI SetEvent(HANDLE hEvent);
BOOL WINAPI ResetEvent(HANDLE hEvent);
/* WaitFor*Object(s)(Ex): over events, thread handles and sockets (a
   socket is signalled by each completion of its operations and reset when
   one starts). */
DWORD WINAPI WaitForSingleObject(HANDLE hHandle, DWORD dwMilliseconds);
DWORD WINAPI WaitForSingleObjectEx(HANDLE hHandle, DWORD dwMilliseconds, BOOL bAlertable);
DWORD WINAPI WaitForMultipleObjects(DWORD nCount, const HANDLE *lpHandles, BOOL bWaitAll,
                                    DWORD dwMilliseconds);
DWORD WINAPI WaitForMultipleObjectsEx(DWORD nCount, const HANDLE *lpHandles, BOOL bWaitAll,
                                      DWORD dwMilliseconds, BOOL bAlertable);
/* SleepEx: 0, or WAIT_IO_COMPLETION when bAlertable and completion
   routines of this thread ran. */
DWORD WINAPI SleepEx(DWORD dwMilliseconds, BOOL bAlertable);
/* Sleep: SleepEx(dwMilliseconds, FALSE); INFINITE never returns. */
void WINAPI Sleep(DWORD dwMilliseconds);
/* CloseHandle: events, ports (waiters wake with ERROR_ABANDONED_WAIT_0),
   thread handles (the thread runs on) and sockets (as closesocket). */
BOOL WINAPI CloseHandle(HANDLE hObject);

/* ------------------------------------------------------------------ */
/* Completion ports.                                                   */
/* ------------------------------------------------------------------ */

/* CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, n): a new port
   (n 0: the processor count). CreateIoCompletionPort((HANDLE)sock, port,
   key, 0): associates the socket with the port under key (one port per
   socket: ERROR_INVALID_PARAMETER for a second); returns the port. */
HANDLE WINAPI CreateIoCompletionPort(HANDLE FileHandle, HANDLE ExistingCompletionPort,
                                     ULONG_PTR CompletionKey, DWORD NumberOfConcurrentThreads);
/* GetQueuedCompletionStatus: TRUE with a successful packet; FALSE with
   *lpOverlapped set for a failed operation (GetLastError() = its Win32
   code, e.g. ERROR_NETNAME_DELETED, ERROR_OPERATION_ABORTED); FALSE with
   *lpOverlapped NULL on a timeout (WAIT_TIMEOUT) or when the port was
   closed (ERROR_ABANDONED_WAIT_0). *lpOverlapped is the very pointer the
   operation was started with; its OVERLAPPED is written first. */
BOOL WINAPI GetQueuedCompletionStatus(HANDLE CompletionPort, LPDWORD lpNumberOfBytesTransferred,
                                      PULONG_PTR lpCompletionKey, LPOVERLAPPED *lpOverlapped,
                                      DWORD dwMilliseconds);
/* GetQueuedCompletionStatusEx: up to ulCount packets; an entry's Internal
   is its operation's NTSTATUS. fAlertable: the thread's completion
   routines, APCs and timer routines run in the wait, which then returns
   FALSE with WAIT_IO_COMPLETION (*ulNumEntriesRemoved 0). */
BOOL WINAPI GetQueuedCompletionStatusEx(HANDLE CompletionPort, LPOVERLAPPED_ENTRY lpEntries,
                                        ULONG ulCount, PULONG ulNumEntriesRemoved,
                                        DWORD dwMilliseconds, BOOL fAlertable);
/* PostQueuedCompletionStatus: lpOverlapped comes back as it is (any
   pointer, or NULL). */
BOOL WINAPI PostQueuedCompletionStatus(HANDLE CompletionPort, DWORD dwNumberOfBytesTransferred,
                                       ULONG_PTR dwCompletionKey, LPOVERLAPPED lpOverlapped);

/* ------------------------------------------------------------------ */
/* Threads and the system.                                             */
/* ------------------------------------------------------------------ */

typedef DWORD(WINAPI *LPTHREAD_START_ROUTINE)(LPVOID lpThreadParameter);
typedef LPTHREAD_START_ROUTINE PTHREAD_START_ROUTINE;
#define STACK_SIZE_PARAM_IS_A_RESERVATION 0x00010000
/* CreateThread / _beginthreadex: a system thread running the routine; the
   handle is signalled when it returns (WaitForSingleObject) and
   GetExitCodeThread gives its value. CREATE_SUSPENDED is not supported. */
HANDLE WINAPI CreateThread(LPSECURITY_ATTRIBUTES lpThreadAttributes, SIZE_T dwStackSize,
                           LPTHREAD_START_ROUTINE lpStartAddress, LPVOID lpParameter,
                           DWORD dwCreationFlags, LPDWORD lpThreadId);
uintptr_t __cdecl _beginthreadex(void *security, unsigned stack_size,
                                 unsigned(__stdcall *start_address)(void *), void *arglist,
                                 unsigned initflag, unsigned *thrdaddr);
BOOL WINAPI GetExitCodeThread(HANDLE hThread, LPDWORD lpExitCode);
/* GetCurrentThreadId: the system's thread id (gettid). */
DWORD WINAPI GetCurrentThreadId(void);
/* GetTickCount: milliseconds of a monotonic clock, wrapping at 2^32 (the
   origin is not the system's start, as it is on Windows). */
DWORD WINAPI GetTickCount(void);

typedef struct _SYSTEM_INFO {
    union {
        DWORD dwOemId;
        struct {
            WORD wProcessorArchitecture;
            WORD wReserved;
        };
    };
    DWORD dwPageSize;
    LPVOID lpMinimumApplicationAddress;
    LPVOID lpMaximumApplicationAddress;
    DWORD_PTR dwActiveProcessorMask;
    DWORD dwNumberOfProcessors;
    DWORD dwProcessorType;
    DWORD dwAllocationGranularity;
    WORD wProcessorLevel;
    WORD wProcessorRevision;
} SYSTEM_INFO, *LPSYSTEM_INFO;
/* GetSystemInfo: dwNumberOfProcessors is what this process may use. */
void WINAPI GetSystemInfo(LPSYSTEM_INFO lpSystemInfo);

/* GetCurrentThread: the pseudo-handle, as on Windows. */
#define GetCurrentThread() ((HANDLE)(LONG_PTR)-2)

/* SetConsoleCtrlHandler: Ctrl+C (SIGINT) calls the handlers on a thread of
   their own, the last added first, until one returns TRUE; when none does,
   the process ends. A NULL handler with TRUE ignores Ctrl+C. Only
   CTRL_C_EVENT is delivered. */
#define CTRL_C_EVENT 0
#define CTRL_BREAK_EVENT 1
#define CTRL_CLOSE_EVENT 2
#define CTRL_LOGOFF_EVENT 5
#define CTRL_SHUTDOWN_EVENT 6
typedef BOOL(WINAPI *PHANDLER_ROUTINE)(DWORD CtrlType);
BOOL WINAPI SetConsoleCtrlHandler(PHANDLER_ROUTINE HandlerRoutine, BOOL Add);

/* Critical sections (recursive mutexes), interlocked operations, memory. */
typedef pthread_mutex_t CRITICAL_SECTION, *LPCRITICAL_SECTION;
static inline void InitializeCriticalSection(LPCRITICAL_SECTION cs) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(cs, &a);
    pthread_mutexattr_destroy(&a);
}
static inline void EnterCriticalSection(LPCRITICAL_SECTION cs) { pthread_mutex_lock(cs); }
static inline void LeaveCriticalSection(LPCRITICAL_SECTION cs) { pthread_mutex_unlock(cs); }
static inline void DeleteCriticalSection(LPCRITICAL_SECTION cs) { pthread_mutex_destroy(cs); }
static inline LONG InterlockedIncrement(LONG volatile *p) {
    return __atomic_add_fetch(p, 1, __ATOMIC_SEQ_CST);
}
static inline LONG InterlockedDecrement(LONG volatile *p) {
    return __atomic_sub_fetch(p, 1, __ATOMIC_SEQ_CST);
}
static inline LONG InterlockedExchangeAdd(LONG volatile *p, LONG v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
static inline LONG InterlockedExchange(LONG volatile *p, LONG v) {
    return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
}
static inline LONG InterlockedCompareExchange(LONG volatile *p, LONG v, LONG cmp) {
    __atomic_compare_exchange_n(p, &cmp, v, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return cmp;
}
static inline PVOID InterlockedExchangePointer(PVOID volatile *p, PVOID v) {
    return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
}
static inline PVOID InterlockedCompareExchangePointer(PVOID volatile *p, PVOID v, PVOID cmp) {
    __atomic_compare_exchange_n(p, &cmp, v, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return cmp;
}
#define GMEM_FIXED 0x0000
#define GMEM_ZEROINIT 0x0040
#define GPTR (GMEM_FIXED | GMEM_ZEROINIT)
#define HEAP_ZERO_MEMORY 0x00000008
static inline HANDLE GlobalAlloc(UINT flags, SIZE_T n) {
    return (flags & GMEM_ZEROINIT) ? calloc(1, n ? n : 1) : malloc(n ? n : 1);
}
static inline HANDLE GlobalFree(HANDLE p) {
    free(p);
    return NULL;
}
static inline HANDLE GetProcessHeap(void) { return (HANDLE)(LONG_PTR)1; }
static inline LPVOID HeapAlloc(HANDLE heap, DWORD flags, SIZE_T n) {
    (void)heap;
    return (flags & HEAP_ZERO_MEMORY) ? calloc(1, n ? n : 1) : malloc(n ? n : 1);
}
static inline BOOL HeapFree(HANDLE heap, DWORD flags, LPVOID p) {
    (void)heap;
    (void)flags;
    free(p);
    return TRUE;
}

#ifdef __cplusplus
}
#endif

#include "overlapped_ext.h"

#endif /* OVERLAPPED_H */
