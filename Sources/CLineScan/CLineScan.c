// The functions are static inline in the header; this file only gives the target a source.
#include "CLineScan.h"
