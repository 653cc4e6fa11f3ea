//! The Windows structures the calls take, laid out as on 64-bit Windows,
//! and the constants the Rust side needs (the header has the same values).

use std::ffi::c_void;

/// `OVERLAPPED` / `WSAOVERLAPPED`: `ULONG_PTR Internal; ULONG_PTR
/// InternalHigh; DWORD Offset; DWORD OffsetHigh; HANDLE hEvent;` (the
/// `Offset` pair is a union with `PVOID Pointer` in the header).
#[repr(C)]
#[derive(Debug)]
pub struct Overlapped {
    /// `Internal`: the operation's `NTSTATUS` (`STATUS_PENDING` while in
    /// flight).
    pub internal: usize,
    /// `InternalHigh`: the bytes transferred.
    pub internal_high: usize,
    /// `Offset`: the receive flags once complete (what Windows'
    /// `WSAGetOverlappedResult` reports in `lpdwFlags`).
    pub offset: u32,
    /// `OffsetHigh`.
    pub offset_high: u32,
    /// `hEvent`: the event set on completion (unless a completion routine
    /// is given; then it is the program's own value).
    pub h_event: *mut c_void,
}

/// `WSABUF`: `ULONG len; CHAR *buf;`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WsaBuf {
    /// `len`.
    pub len: u32,
    /// `buf`.
    pub buf: *mut u8,
}

/// `OVERLAPPED_ENTRY`.
#[repr(C)]
#[derive(Debug)]
pub struct OverlappedEntry {
    /// `lpCompletionKey`.
    pub completion_key: usize,
    /// `lpOverlapped`.
    pub overlapped: *mut Overlapped,
    /// `Internal`.
    pub internal: usize,
    /// `dwNumberOfBytesTransferred`.
    pub bytes: u32,
}

/// `WSADATA` (the 64-bit layout: the counts and the vendor pointer come
/// before the strings).
#[repr(C)]
#[derive(Debug)]
pub struct WsaData {
    /// `wVersion`.
    pub version: u16,
    /// `wHighVersion`.
    pub high_version: u16,
    /// `iMaxSockets`.
    pub max_sockets: u16,
    /// `iMaxUdpDg`.
    pub max_udp_dg: u16,
    /// `lpVendorInfo`.
    pub vendor_info: *mut u8,
    /// `szDescription[WSADESCRIPTION_LEN + 1]`.
    pub description: [u8; 257],
    /// `szSystemStatus[WSASYS_STATUS_LEN + 1]`.
    pub system_status: [u8; 129],
}

/// `SYSTEM_INFO`.
#[repr(C)]
#[derive(Debug)]
pub struct SystemInfo {
    /// `wProcessorArchitecture` (in a union with `dwOemId`).
    pub processor_architecture: u16,
    /// `wReserved`.
    pub reserved: u16,
    /// `dwPageSize`.
    pub page_size: u32,
    /// `lpMinimumApplicationAddress`.
    pub min_app_address: *mut c_void,
    /// `lpMaximumApplicationAddress`.
    pub max_app_address: *mut c_void,
    /// `dwActiveProcessorMask`.
    pub active_processor_mask: usize,
    /// `dwNumberOfProcessors`.
    pub number_of_processors: u32,
    /// `dwProcessorType`.
    pub processor_type: u32,
    /// `dwAllocationGranularity`.
    pub allocation_granularity: u32,
    /// `wProcessorLevel`.
    pub processor_level: u16,
    /// `wProcessorRevision`.
    pub processor_revision: u16,
}

/// `LPWSAOVERLAPPED_COMPLETION_ROUTINE`: `(dwError, cbTransferred,
/// lpOverlapped, dwFlags)`.
pub type CompletionRoutine = unsafe extern "C" fn(u32, u32, *mut Overlapped, u32);

/// `LPTHREAD_START_ROUTINE`.
pub type ThreadStart = unsafe extern "C" fn(*mut c_void) -> u32;

/// `SOCKET_ERROR`.
pub const SOCKET_ERROR: i32 = -1;
/// `INVALID_SOCKET`.
pub const INVALID_SOCKET: usize = usize::MAX;
/// `INVALID_HANDLE_VALUE` as a number.
pub const INVALID_HANDLE_VALUE: usize = usize::MAX;
/// `INFINITE` / `WSA_INFINITE`.
pub const INFINITE: u32 = u32::MAX;
/// `TRUE`.
pub const TRUE: i32 = 1;
/// `FALSE`.
pub const FALSE: i32 = 0;

/// `WAIT_OBJECT_0` / `WSA_WAIT_EVENT_0`.
pub const WAIT_OBJECT_0: u32 = 0;
/// `WAIT_IO_COMPLETION` / `WSA_WAIT_IO_COMPLETION`.
pub const WAIT_IO_COMPLETION: u32 = 0xC0;
/// `WAIT_TIMEOUT` / `WSA_WAIT_TIMEOUT`.
pub const WAIT_TIMEOUT: u32 = 258;
/// `WAIT_FAILED` / `WSA_WAIT_FAILED`.
pub const WAIT_FAILED: u32 = u32::MAX;
/// `MAXIMUM_WAIT_OBJECTS` / `WSA_MAXIMUM_WAIT_EVENTS`.
pub const MAXIMUM_WAIT_OBJECTS: u32 = 64;

/// `MSG_OOB`.
pub const MSG_OOB: u32 = 0x1;
/// `MSG_PEEK`.
pub const MSG_PEEK: u32 = 0x2;
/// `MSG_DONTROUTE`.
pub const MSG_DONTROUTE: u32 = 0x4;
/// `MSG_WAITALL`.
pub const MSG_WAITALL: u32 = 0x8;
/// `MSG_PARTIAL`.
pub const MSG_PARTIAL: u32 = 0x8000;

/// `FIONBIO`.
pub const FIONBIO: i32 = 0x8004_667E_u32 as i32;
/// `FIONREAD`.
pub const FIONREAD: i32 = 0x4004_667F;

/// `SOL_SOCKET` (Windows' value).
pub const SOL_SOCKET: i32 = 0xFFFF;
/// `SO_REUSEADDR`.
pub const SO_REUSEADDR: i32 = 0x0004;
/// `SO_KEEPALIVE`.
pub const SO_KEEPALIVE: i32 = 0x0008;
/// `SO_BROADCAST`.
pub const SO_BROADCAST: i32 = 0x0020;
/// `SO_LINGER`.
pub const SO_LINGER: i32 = 0x0080;
/// `SO_OOBINLINE`.
pub const SO_OOBINLINE: i32 = 0x0100;
/// `SO_SNDBUF`.
pub const SO_SNDBUF: i32 = 0x1001;
/// `SO_RCVBUF`.
pub const SO_RCVBUF: i32 = 0x1002;
/// `SO_SNDTIMEO`.
pub const SO_SNDTIMEO: i32 = 0x1005;
/// `SO_RCVTIMEO`.
pub const SO_RCVTIMEO: i32 = 0x1006;
/// `SO_ERROR`.
pub const SO_ERROR: i32 = 0x1007;
/// `SO_TYPE`.
pub const SO_TYPE: i32 = 0x1008;
/// `SO_UPDATE_ACCEPT_CONTEXT`.
pub const SO_UPDATE_ACCEPT_CONTEXT: i32 = 0x700B;
/// `SO_UPDATE_CONNECT_CONTEXT`.
pub const SO_UPDATE_CONNECT_CONTEXT: i32 = 0x7010;
/// `IPPROTO_IP`.
pub const IPPROTO_IP: i32 = 0;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: i32 = 6;
/// `IPPROTO_IPV6`.
pub const IPPROTO_IPV6: i32 = 41;
/// `TCP_NODELAY`.
pub const TCP_NODELAY: i32 = 0x0001;
/// `IP_PKTINFO` (Windows' value).
pub const IP_PKTINFO: i32 = 19;
/// `IPV6_PKTINFO` (Windows' value).
pub const IPV6_PKTINFO: i32 = 19;
/// `IPV6_V6ONLY` (Windows' value).
pub const IPV6_V6ONLY: i32 = 27;

/// `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS`.
pub const FILE_SKIP_COMPLETION_PORT_ON_SUCCESS: u8 = 0x1;
/// `FILE_SKIP_SET_EVENT_ON_HANDLE`.
pub const FILE_SKIP_SET_EVENT_ON_HANDLE: u8 = 0x2;
