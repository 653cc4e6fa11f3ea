/* ws2tcpip.h: the Windows name of overlapped.h (see there). */
#include "overlapped.h"
