/* mswsock.h: the Windows name of overlapped.h (see there); the Microsoft
   extension functions (AcceptEx, ConnectEx, DisconnectEx, TransmitFile,
   WSARecvMsg through WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER)) are in
   overlapped_ext.h, which it includes. */
#include "overlapped.h"
