/* mswsock.h: the Windows name of overlapped.h (see there). The Microsoft
   extension functions (AcceptEx, ConnectEx, DisconnectEx, TransmitFile,
   WSARecvMsg through WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER)) are not
   offered yet. */
#include "overlapped.h"
