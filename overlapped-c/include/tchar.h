/* tchar.h: the ANSI ("MBCS") spellings of the generic-text names, as a
   program built without UNICODE gets them on Windows. */
#ifndef OVERLAPPED_TCHAR_H
#define OVERLAPPED_TCHAR_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef char TCHAR, _TCHAR, *LPTSTR, *PTSTR;
typedef const char *LPCTSTR, *PCTSTR;
#define _T(x) x
#define _TEXT(x) x
#define TEXT(x) x
#define _tmain main
#define _tprintf printf
#define _ftprintf fprintf
#define _stprintf sprintf
#define _sntprintf snprintf
#define _tcslen strlen
#define _tcscpy strcpy
#define _tcsncpy strncpy
#define _tcscmp strcmp
#define _tcsicmp strcasecmp
#define _tcscat strcat
#define _tcschr strchr
#define _tcsrchr strrchr
#define _tcsstr strstr
#define _ttoi atoi
#define _tstoi atoi
#define _tcstol strtol
#define _tcstoul strtoul
#define _fgetts fgets
#define _fputts fputs
#endif
