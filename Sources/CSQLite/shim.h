#include <sqlite3.h>

// SQLITE_TRANSIENT is a cast macro Swift cannot import; bind calls need it to copy values.
static inline sqlite3_destructor_type csqlite_transient(void) { return (sqlite3_destructor_type)-1; }

// sqlite3_config is variadic (Swift cannot call it). Memory statistics off: with them every
// allocation SQLite makes takes a global mutex (about 3 % of the job intake's time).
static inline int csqlite_disable_memstatus(void) { return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }
