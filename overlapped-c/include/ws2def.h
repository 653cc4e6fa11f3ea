/* ws2def.h: the Windows name of overlapped.h (see there). */
#include "overlapped.h"
