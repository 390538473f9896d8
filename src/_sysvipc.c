/*
 * sysvipc._sysvipc: the C core of sysvipc.
 *
 * One function per System V IPC syscall (and per ctl command family), made
 * directly against the kernel.  Rules this file follows everywhere:
 *
 *  - No Py* call between Py_BEGIN_ALLOW_THREADS and Py_END_ALLOW_THREADS:
 *    everything a syscall needs is copied into locals first, errno is saved
 *    right after it, and errors are raised once the GIL is held again.
 *  - EINTR is retried the PEP 475 way: a signal handler that raises stops the
 *    call at once, one that returns lets it resume; a timeout keeps counting
 *    from its monotonic deadline.
 *  - Every integer argument is range-checked against the C type it becomes;
 *    nothing is silently truncated.
 *  - Module state, heap types, multi-phase init (PEP 489, PEP 630).
 */

#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifndef __linux__
#error "sysvipc supports Linux only"
#endif

/* Values from <linux/shm.h> that glibc does not export. */
#ifndef SHM_HUGE_SHIFT
#define SHM_HUGE_SHIFT 26
#endif
#ifndef SHM_HUGE_2MB
#define SHM_HUGE_2MB (21 << SHM_HUGE_SHIFT)
#endif
#ifndef SHM_HUGE_1GB
#define SHM_HUGE_1GB (30 << SHM_HUGE_SHIFT)
#endif
#ifndef SEMVMX
#define SEMVMX 32767 // the kernel's limit, fixed in ipc/sem.c
#endif

/* Messages up to this size are received through a buffer on the stack. */
#define STACK_MSG_SIZE 8192
/* Copies at least this large are made with the GIL released. */
#define GIL_RELEASE_COPY_SIZE (64 * 1024)
/* Semaphore operations held on the stack before a heap array is used. */
#define STACK_SEMOPS 16

/* The caller must define union semun (semctl(2)). */
union semun {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
    struct seminfo *__buf;
};

/* A message in the kernel's layout: the type, then the payload. */
typedef struct {
    long mtype;
    char mtext[STACK_MSG_SIZE];
} stack_msgbuf;

/* ------------------------------------------------------------------------ */
/* Module state                                                              */
/* ------------------------------------------------------------------------ */

typedef struct {
    PyObject *IdentifierRemovedError;
    PyTypeObject *AttachmentType;
    PyTypeObject *HandleType;
    PyTypeObject *MessageType;
    PyTypeObject *MessageQueueBaseType;
    PyTypeObject *SemaphoreSetBaseType;
    PyTypeObject *SemaphoreBaseType;
    PyObject *receive_reserve; // see receive_small
} module_state;

static struct PyModuleDef sysvipc_module;

static inline module_state *
get_state(PyObject *module)
{
    return (module_state *)PyModule_GetState(module);
}

static inline module_state *
get_state_by_type(PyTypeObject *type)
{
    PyObject *module = PyType_GetModuleByDef(type, &sysvipc_module);
    return module ? get_state(module) : NULL;
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * The kernel's reason for `err` from `syscall_name`, in words, where the
 * manual pages pin it down (NULL where errno alone says it all).
 */
static const char *
kernel_reason(int err, const char *syscall_name)
{
    const char kind = syscall_name[1]; // m(s)g, s(e)m, s(h)m
    const int is_get = strstr(syscall_name, "get") != NULL;
    const int is_ctl = strstr(syscall_name, "ctl") != NULL;
    switch (err) {
    case EEXIST:
        return is_get ? "one already exists with this key" : NULL;
    case EACCES:
        return "its permission bits do not grant this user that access";
    case EPERM:
        return "only its owner, its creator or a privileged process may do "
               "that";
    case ENOSPC:
        if (!is_get) {
            return NULL;
        }
        return kind == 's' ? "a system-wide limit is reached (msgmni queues)"
               : kind == 'e'
                   ? "a system-wide limit is reached (semmni sets or semmns "
                     "semaphores)"
                   : "a system-wide limit is reached (shmmni segments or "
                     "shmall pages)";
    case EINVAL:
        if (is_get && kind == 'h') {
            return "the size asked for is larger than the existing "
                   "segment's, or outside the limits SHMMIN..SHMMAX";
        }
        if (is_get && kind == 'e') {
            return "nsems is larger than the existing set's, or above SEMMSL";
        }
        if (is_ctl) {
            return "no object has this id (it may have been removed), or the "
                   "kernel refused the arguments";
        }
        return NULL;
    case EIDRM:
        return "it was removed";
    case ENOMEM:
        return "the kernel or this process is out of memory";
    case EAGAIN:
        return kind == 's' ? "the queue is full" : NULL;
    case ENOMSG:
        return "no message of the requested type";
    case E2BIG:
        return kind == 's' ? "the message is longer than the buffer"
                           : "more operations in one call than SEMOPM";
    case ERANGE:
        return "a value would go above SEMVMX";
    case EFBIG:
        return "a semaphore index beyond the set";
    default:
        return NULL;
    }
}

/*
 * The one error helper: raise the OSError subclass for `err`, naming the
 * object (its kind, and its key or id) and the syscall, with the kernel's
 * reason in words where it is known.  OSError's own constructor picks
 * FileNotFoundError, PermissionError, ... from errno; the cases it does not
 * know are chosen here.  `what` is "key" or "id" (NULL: no object).
 */
static PyObject *
make_ipc_error(module_state *st, int err, const char *syscall_name,
               const char *what, long long ident)
{
    PyObject *type = PyExc_OSError;
    const char *text = strerror(err);
    if (err == EIDRM) {
        type = st->IdentifierRemovedError;
    }
    else if (err == ENOMSG) {
        type = PyExc_BlockingIOError; // msgrcv's "would block"
    }
    else if (err == ETIMEDOUT) {
        type = PyExc_TimeoutError;
        text = "Timed out";
    }
    const char *reason = kernel_reason(err, syscall_name);
    const char *kind = syscall_name[1] == 's'   ? "message queue"
                       : syscall_name[1] == 'e' ? "semaphore set"
                                                : "shared memory segment";
    PyObject *msg;
    if (what == NULL) {
        msg = PyUnicode_FromFormat("%s (originated from %s)", text,
                                   syscall_name);
    }
    else {
        char object[96];
        if (strcmp(what, "key") == 0) {
            snprintf(object, sizeof object, "%s with key 0x%08x", kind,
                     (unsigned)(uint32_t)ident);
        }
        else {
            snprintf(object, sizeof object, "%s with %s %lld", kind, what,
                     ident);
        }
        msg = PyUnicode_FromFormat("%s: %s%s%s (originated from %s)", text,
                                   object, reason ? ": " : "",
                                   reason ? reason : "", syscall_name);
    }
    PyObject *args = msg ? Py_BuildValue("(iN)", err, msg) : NULL;
    if (args == NULL) {
        return NULL;
    }
    PyObject *exc = PyObject_Call(type, args, NULL);
    Py_DECREF(args);
    return exc;
}

static PyObject *
raise_ipc_error(module_state *st, int err, const char *syscall_name,
                const char *what, long long ident)
{
    PyObject *exc = make_ipc_error(st, err, syscall_name, what, ident);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* A failed call on the object with this id. */
static PyObject *
raise_errno(module_state *st, int err, const char *syscall_name, int id)
{
    return raise_ipc_error(st, err, syscall_name, "id", id);
}

/* A failed *get on this key. */
static PyObject *
raise_errno_key(module_state *st, int err, const char *syscall_name, key_t key)
{
    return raise_ipc_error(st, err, syscall_name, "key", (uint32_t)key);
}

/* ------------------------------------------------------------------------ */
/* Argument parsing                                                          */
/* ------------------------------------------------------------------------ */

/*
 * Whether keyword `key` (a str: the interpreter checks) is `name`.  Call
 * sites pass compact ASCII names, compared here without the generic
 * Unicode comparison, which costs more than the syscall behind the call.
 */
static inline int
keyword_is(PyObject *key, const char *name)
{
    if (PyUnicode_IS_COMPACT_ASCII(key)) {
        Py_ssize_t len = PyUnicode_GET_LENGTH(key);
        const char *text = (const char *)PyUnicode_DATA(key);
        for (Py_ssize_t i = 0; i < len; i++) {
            if (name[i] != text[i] || name[i] == '\0') {
                return 0; // never reads past the end of name
            }
        }
        return name[len] == '\0';
    }
    return PyUnicode_CompareWithASCIIString(key, name) == 0;
}

/*
 * Sort METH_FASTCALL | METH_KEYWORDS arguments into `out` (borrowed
 * references, NULL where not given).  `names` lists every parameter; the
 * first `npos` may be passed by position, the first `nreq` are required.
 */
static int
parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames, const char *const *names, Py_ssize_t nnames,
           Py_ssize_t npos, Py_ssize_t nreq, PyObject **out)
{
    Py_ssize_t i, j;
    for (i = 0; i < nnames; i++) {
        out[i] = NULL;
    }
    if (nargs > npos) {
        PyErr_Format(
            PyExc_TypeError,
            "%s() takes at most %zd positional argument%s (%zd given)", fname,
            npos, npos == 1 ? "" : "s", nargs);
        return -1;
    }
    for (i = 0; i < nargs; i++) {
        out[i] = args[i];
    }
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (i = 0; i < nkw; i++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, i);
            for (j = 0; j < nnames; j++) {
                if (keyword_is(key, names[j])) {
                    break;
                }
            }
            if (j == nnames) {
                PyErr_Format(PyExc_TypeError,
                             "%s() got an unexpected keyword argument '%U'",
                             fname, key);
                return -1;
            }
            if (out[j] != NULL) {
                PyErr_Format(PyExc_TypeError,
                             "%s() got multiple values for argument '%s'",
                             fname, names[j]);
                return -1;
            }
            out[j] = args[nargs + i];
        }
    }
    for (i = 0; i < nreq; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() missing required argument '%s'", fname,
                         names[i]);
            return -1;
        }
    }
    return 0;
}

/*
 * Convert an integer argument, rejecting (not truncating) values outside
 * [lo, hi].  bool is refused: True as a key or a size is a bug.
 */
static int
to_llong(PyObject *obj, const char *what, long long lo, long long hi,
         long long *out)
{
    if (PyLong_CheckExact(obj)) { // the everyday case, without __index__
        int overflow = 0;
        long long value = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (overflow == 0 && value >= lo && value <= hi) {
            *out = value;
            return 0;
        }
        // Out of range: the general path below says so.
    }
    if (PyBool_Check(obj) || !PyIndex_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an integer, not %.100s",
                     what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyObject *index = PyNumber_Index(obj);
    if (index == NULL) {
        return -1;
    }
    int overflow = 0;
    long long value = PyLong_AsLongLongAndOverflow(index, &overflow);
    if (value == -1 && PyErr_Occurred()) {
        Py_DECREF(index);
        return -1;
    }
    if (overflow != 0 || value < lo || value > hi) {
        PyErr_Format(PyExc_ValueError,
                     "%s must be in the range %lld..%lld, got %S", what, lo,
                     hi, index);
        Py_DECREF(index);
        return -1;
    }
    Py_DECREF(index);
    *out = value;
    return 0;
}

/* Unsigned variant, for sizes up to SIZE_MAX-like ranges. */
static int
to_ullong(PyObject *obj, const char *what, unsigned long long hi,
          unsigned long long *out)
{
    if (PyBool_Check(obj) || !PyIndex_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an integer, not %.100s",
                     what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyObject *index = PyNumber_Index(obj);
    if (index == NULL) {
        return -1;
    }
    int negative = PyObject_RichCompareBool(index, Py_False, Py_LT);
    unsigned long long value = 0;
    if (negative == 0) {
        value = PyLong_AsUnsignedLongLong(index);
        if (value == (unsigned long long)-1 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
                Py_DECREF(index);
                return -1;
            }
            PyErr_Clear();
            negative = 1; // reported as out of range below
        }
    }
    if (negative < 0) {
        Py_DECREF(index);
        return -1;
    }
    if (negative || value > hi) {
        PyErr_Format(PyExc_ValueError,
                     "%s must be in the range 0..%llu, got %S", what, hi,
                     index);
        Py_DECREF(index);
        return -1;
    }
    Py_DECREF(index);
    *out = value;
    return 0;
}

static int
to_int(PyObject *obj, const char *what, long long lo, long long hi, int *out)
{
    long long v;
    if (to_llong(obj, what, lo, hi, &v) < 0) {
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* An optional int argument with a default. */
static int
opt_int(PyObject *obj, const char *what, long long lo, long long hi, int dflt,
        int *out)
{
    if (obj == NULL || obj == Py_None) {
        *out = dflt;
        return 0;
    }
    return to_int(obj, what, lo, hi, out);
}

/* The keys accepted: key_t's 32 bits in either spelling (exported). */
#define KEY_MIN ((long)INT32_MIN)
#define KEY_MAX ((long)UINT32_MAX)

/*
 * The one place where a key's range is checked.  A key_t is 32 bits, which
 * tools print unsigned (ipcs: 0xdeadbeef) and C code often holds signed:
 * both spellings are accepted and name the same key; anything wider is
 * refused, never truncated.
 */
static int
to_key(PyObject *obj, key_t *out)
{
    long long v;
    if (to_llong(obj, "key", KEY_MIN, KEY_MAX, &v) < 0) {
        if (PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError,
                         "key must fit a 32-bit key_t: 0..0xffffffff (as ipcs "
                         "prints it) or -0x80000000..0x7fffffff, got %S",
                         obj);
        }
        return -1;
    }
    *out = (key_t)(uint32_t)(v & 0xFFFFFFFFLL);
    return 0;
}

/* A key as Python sees it: the unsigned spelling, 0..0xffffffff. */
static PyObject *
key_to_python(key_t key)
{
    return PyLong_FromUnsignedLong((unsigned long)(uint32_t)key);
}

static int
to_id(PyObject *obj, const char *what, int *out)
{
    return to_int(obj, what, 0, INT_MAX, out);
}

/* Flags may only contain the bits in `allowed`. */
static int
check_flags(int flags, int allowed, const char *fname)
{
    if (flags & ~allowed) {
        // PyErr_Format has no %o: format the octal numbers here.
        char text[160];
        PyOS_snprintf(text, sizeof(text),
                      "%s(): unsupported flag bits 0o%o (allowed: 0o%o)",
                      fname, (unsigned)(flags & ~allowed), (unsigned)allowed);
        PyErr_SetString(PyExc_ValueError, text);
        return -1;
    }
    return 0;
}

/* A writable buffer, or TypeError as the standard library's recv_into and
 * readinto give (PyObject_GetBuffer alone says BufferError). */
static int
get_writable_buffer(PyObject *obj, Py_buffer *view, const char *fname)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE) == 0) {
        return 0;
    }
    if (PyErr_ExceptionMatches(PyExc_BufferError)) {
        PyErr_Format(PyExc_TypeError,
                     "%s() argument 'buffer' must be a writable bytes-like "
                     "object, not %.100s",
                     fname, Py_TYPE(obj)->tp_name);
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Time: deadlines on the monotonic clock                                    */
/* ------------------------------------------------------------------------ */

static int64_t
monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timespec
ns_to_timespec(int64_t ns)
{
    struct timespec ts;
    if (ns < 0) {
        ns = 0;
    }
    ts.tv_sec = (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    return ts;
}

/*
 * Parse a timeout in seconds.  Sets *has_deadline to 0 for None (or an
 * infinite timeout), otherwise *deadline to the monotonic instant it ends.
 */
static int
parse_timeout(PyObject *obj, int *has_deadline, int64_t *deadline)
{
    *has_deadline = 0;
    *deadline = 0;
    if (obj == NULL || obj == Py_None) {
        return 0;
    }
    if (PyBool_Check(obj) ||
        !(PyFloat_Check(obj) || PyLong_Check(obj) || PyIndex_Check(obj) ||
          Py_TYPE(obj)->tp_as_number != NULL)) {
        PyErr_Format(PyExc_TypeError,
                     "timeout must be a number of seconds or None, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    double seconds = PyFloat_AsDouble(obj);
    if (seconds == -1.0 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            if (PyObject_RichCompareBool(obj, Py_False, Py_LT) == 1) {
                PyErr_SetString(PyExc_ValueError,
                                "timeout must not be negative");
                return -1;
            }
            return 0; // a huge integer: no deadline
        }
        return -1;
    }
    if (isnan(seconds)) {
        PyErr_SetString(PyExc_ValueError, "timeout must not be NaN");
        return -1;
    }
    if (seconds < 0) {
        PyErr_SetString(PyExc_ValueError, "timeout must not be negative");
        return -1;
    }
    if (seconds > 1e9) { // ~31 years: treated as no timeout at all
        return 0;
    }
    *has_deadline = 1;
    *deadline = monotonic_ns() + (int64_t)(seconds * 1e9);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Waking a thread blocked in msgsnd/msgrcv at its deadline                  */
/* ------------------------------------------------------------------------ */

/*
 * The kernel has no timed msgsnd/msgrcv.  A timed call blocks in the plain
 * syscall, and at the deadline a watchdog thread (one per process, started
 * by the first timed wait) sends the waiting thread a real-time signal whose
 * handler does nothing: its only effect is the EINTR that ends the wait.
 * Waiting costs no CPU and a message is delivered the moment it arrives.
 *
 * A thread rather than a POSIX timer per wait, for three reasons:
 *  - a waiter leaves the watchdog's list the moment its syscall returns,
 *    before it waits for the GIL: nothing signals a thread that waits for
 *    the GIL (a timer kept firing every 100 µs until the GIL came back, and
 *    many expired waits slowed the GIL holder to a crawl);
 *  - the watchdog looks at the signal's disposition right before each
 *    signal it sends.  SIG_DFL would kill the process (the save-and-restore
 *    idiom sets it, since Python reports SIG_DFL for a handler installed
 *    from C) and SIG_IGN would make the signal vanish: both are replaced by
 *    the no-op handler first.  A handler of the application's own gets the
 *    signal (the wait must end on time);
 *  - fork copies neither threads nor timers: the child's state is reset
 *    (pthread_atfork) and its first timed wait starts its own watchdog.
 *    A waiter joins the list afresh, with its current thread id, for each
 *    blocking call, so a fork from a signal handler during a wait is fine.
 * The watchdog ends a second after the last wait, so no thread is left
 * behind when timed calls are not in use.
 * The signal may land just before the syscall begins; it is then sent
 * again after 100 µs, 200 µs, ... (at most every 10 ms) until the waiter
 * leaves the list.
 *
 * A wait takes the signal only while nobody else handles it (disposition
 * SIG_DFL, SIG_IGN or ours); otherwise, and where no thread can be started,
 * it falls back to polling with IPC_NOWAIT.  Signal dispositions, the
 * watchdog and the fork generation are process-wide by nature, hence the
 * static state.
 */

static void
wakeup_handler(int signo)
{
    (void)signo;
}

static int
wakeup_signal(void)
{
    return SIGRTMIN + 5;
}

static int
wakeup_handler_installed(const struct sigaction *sa)
{
    return !(sa->sa_flags & SA_SIGINFO) && sa->sa_handler == wakeup_handler;
}

/* SIG_DFL or SIG_IGN: nobody handles the signal. */
static int
wakeup_signal_unhandled(const struct sigaction *sa)
{
    return !(sa->sa_flags & SA_SIGINFO) &&
           (sa->sa_handler == SIG_DFL || sa->sa_handler == SIG_IGN);
}

static int
install_wakeup_handler(int signo)
{
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = wakeup_handler;
    sigfillset(&action.sa_mask);
    action.sa_flags = 0; // no SA_RESTART: the point is the EINTR
    return sigaction(signo, &action, NULL);
}

/* 1 when the wake-up handler is (now) installed, 0 when it cannot be. */
static int
wakeup_signal_ready(void)
{
    int signo = wakeup_signal();
    struct sigaction current;
    if (signo > SIGRTMAX || sigaction(signo, NULL, &current) < 0) {
        return 0;
    }
    if (wakeup_handler_installed(&current)) {
        return 1;
    }
    if (!wakeup_signal_unhandled(&current)) {
        return 0; // the application uses this signal: leave it alone
    }
    return install_wakeup_handler(signo) == 0;
}

typedef struct waiter {
    struct waiter *prev, *next;
    pid_t tid;
    int64_t next_kick; // when to send the signal (next)
    int64_t backoff;   // the pause before the one after
} waiter;

#define KICK_FIRST_BACKOFF_NS 100000
#define KICK_MAX_BACKOFF_NS 10000000
/* How long the watchdog outlives the last wait. */
#define WATCHDOG_LINGER_NS 1000000000

// All guarded by watchdog_lock, except fork_generation (changed in a
// forked child only, while it has a single thread; read with the GIL).
static pthread_mutex_t watchdog_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watchdog_cond; // on CLOCK_MONOTONIC
static pthread_once_t watchdog_once = PTHREAD_ONCE_INIT;
static int watchdog_usable;           // watchdog_cond initialised
static int watchdog_running;          // the thread exists in this process
static pid_t watchdog_pid;            // the process it runs in
static int64_t watchdog_wake;         // when it wakes next (INT64_MAX: idle)
static waiter *watchdog_waiters;      // the waits in progress
static unsigned long fork_generation; // +1 in each forked child

static int
watchdog_cond_init(void)
{
    pthread_condattr_t attr;
    int ok = pthread_condattr_init(&attr) == 0 &&
             pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
             pthread_cond_init(&watchdog_cond, &attr) == 0;
    pthread_condattr_destroy(&attr);
    return ok;
}

static void
watchdog_before_fork(void)
{
    pthread_mutex_lock(&watchdog_lock);
}

static void
watchdog_after_fork_parent(void)
{
    pthread_mutex_unlock(&watchdog_lock);
}

static void
watchdog_after_fork_child(void)
{
    // Only the forking thread exists here: no watchdog, no other waiter,
    // no copy in flight.  Fresh synchronisation objects, as the old ones
    // may name threads that are gone.
    pthread_mutex_init(&watchdog_lock, NULL);
    watchdog_usable = watchdog_usable && watchdog_cond_init();
    watchdog_running = 0;
    watchdog_wake = INT64_MAX;
    watchdog_waiters = NULL;
    fork_generation++;
}

static void
watchdog_setup(void)
{
    watchdog_wake = INT64_MAX;
    watchdog_usable =
        watchdog_cond_init() &&
        pthread_atfork(watchdog_before_fork, watchdog_after_fork_parent,
                       watchdog_after_fork_child) == 0;
}

/* Send the signal to one waiter; watchdog_lock held. */
static void
watchdog_kick(const waiter *w, int signo)
{
    struct sigaction current;
    if (sigaction(signo, NULL, &current) == 0 &&
        wakeup_signal_unhandled(&current)) {
        install_wakeup_handler(signo); // SIG_DFL kills, SIG_IGN drops it
    }
    syscall(SYS_tgkill, watchdog_pid, w->tid, signo);
}

static void *
watchdog_main(void *arg)
{
    (void)arg;
    int signo = wakeup_signal();
    int64_t idle_since = 0;
    pthread_mutex_lock(&watchdog_lock);
    for (;;) {
        int64_t now = monotonic_ns();
        int64_t next = INT64_MAX;
        for (waiter *w = watchdog_waiters; w != NULL; w = w->next) {
            if (w->next_kick <= now) {
                watchdog_kick(w, signo);
                w->next_kick = now + w->backoff;
                w->backoff = w->backoff * 2 > KICK_MAX_BACKOFF_NS
                                 ? KICK_MAX_BACKOFF_NS
                                 : w->backoff * 2;
            }
            if (w->next_kick < next) {
                next = w->next_kick;
            }
        }
        if (next == INT64_MAX) {
            // Nothing waits: linger a while for the next wait, then end,
            // so that no thread is left when timed calls are not in use.
            if (idle_since == 0) {
                idle_since = now;
            }
            else if (now - idle_since >= WATCHDOG_LINGER_NS) {
                watchdog_running = 0;
                watchdog_wake = INT64_MAX;
                pthread_mutex_unlock(&watchdog_lock);
                return NULL;
            }
            watchdog_wake = INT64_MAX;
            next = idle_since + WATCHDOG_LINGER_NS;
        }
        else {
            idle_since = 0;
            watchdog_wake = next;
        }
        struct timespec ts = ns_to_timespec(next);
        pthread_cond_timedwait(&watchdog_cond, &watchdog_lock, &ts);
    }
}

/* Start the watchdog in this process; watchdog_lock held. */
static int
watchdog_start(void)
{
    if (!watchdog_usable) {
        return -1;
    }
    // The thread inherits a mask that blocks every signal: it takes none.
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pthread_attr_t attr;
    pthread_t thread;
    int rc = pthread_attr_init(&attr);
    if (rc == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        rc = pthread_create(&thread, &attr, watchdog_main, NULL);
        pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (rc != 0) {
        return -1;
    }
    watchdog_running = 1;
    watchdog_pid = getpid();
    return 0;
}

/*
 * A timed call's use of the signal: waker_start (GIL held) claims the
 * signal and unblocks it in this thread; waker_arm and waker_disarm
 * bracket each blocking syscall with the GIL released (no Python API);
 * waker_stop restores the signal mask.
 */
typedef struct {
    waiter node;
    sigset_t saved_mask;
    int active;
} waker;

static int
waker_start(waker *w)
{
    w->active = 0;
    if (!wakeup_signal_ready() ||
        pthread_once(&watchdog_once, watchdog_setup) != 0 ||
        !watchdog_usable) {
        return -1;
    }
    sigset_t unblock;
    sigemptyset(&unblock);
    sigaddset(&unblock, wakeup_signal());
    pthread_sigmask(SIG_UNBLOCK, &unblock, &w->saved_mask);
    w->active = 1;
    return 0;
}

/* Join the watchdog's list; -1 if no watchdog can run (then poll). */
static int
waker_arm(waker *w, int64_t deadline)
{
    waiter *node = &w->node;
    node->tid = (pid_t)syscall(SYS_gettid);
    node->next_kick = deadline;
    node->backoff = KICK_FIRST_BACKOFF_NS;
    pthread_mutex_lock(&watchdog_lock);
    if (!watchdog_running && watchdog_start() < 0) {
        pthread_mutex_unlock(&watchdog_lock);
        return -1;
    }
    node->prev = NULL;
    node->next = watchdog_waiters;
    if (node->next != NULL) {
        node->next->prev = node;
    }
    watchdog_waiters = node;
    if (deadline < watchdog_wake) {
        watchdog_wake = deadline;
        pthread_cond_signal(&watchdog_cond);
    }
    pthread_mutex_unlock(&watchdog_lock);
    return 0;
}

/* Leave the list: no signal is sent to this thread after this. */
static void
waker_disarm(waker *w)
{
    waiter *node = &w->node;
    pthread_mutex_lock(&watchdog_lock);
    if (node->prev != NULL) {
        node->prev->next = node->next;
    }
    else {
        watchdog_waiters = node->next;
    }
    if (node->next != NULL) {
        node->next->prev = node->prev;
    }
    pthread_mutex_unlock(&watchdog_lock);
}

static void
waker_stop(waker *w)
{
    if (w->active) {
        pthread_sigmask(SIG_SETMASK, &w->saved_mask, NULL);
        w->active = 0;
    }
}

/* Polling interval bounds for the fallback, in nanoseconds. */
#define POLL_MIN_NS 50000
#define POLL_MAX_NS 1000000

static void
sleep_ns(int64_t ns)
{
    struct timespec ts = ns_to_timespec(ns);
    nanosleep(&ts, NULL); // an EINTR here just ends the nap early
}

/* ------------------------------------------------------------------------ */
/* Keys: ftok                                                                */
/* ------------------------------------------------------------------------ */

PyDoc_STRVAR(
    ftok_doc,
    "ftok(path, proj_id, /)\n--\n\n"
    "Return the System V key that ftok(3) derives from an existing file and\n"
    "proj_id (an int 1..255 or a one-character string, as in C's ftok(p, "
    "'A')).");

static PyObject *
sysvipc_ftok(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    module_state *st = get_state(module);
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError,
                     "ftok() takes exactly 2 arguments (%zd given)", nargs);
        return NULL;
    }
    int proj;
    if (PyUnicode_Check(args[1])) {
        if (PyUnicode_GET_LENGTH(args[1]) != 1) {
            PyErr_SetString(PyExc_ValueError,
                            "proj_id as a string must be one character");
            return NULL;
        }
        Py_UCS4 ch = PyUnicode_READ_CHAR(args[1], 0);
        if (ch < 1 || ch > 255) {
            PyErr_SetString(PyExc_ValueError,
                            "proj_id must be in the range 1..255");
            return NULL;
        }
        proj = (int)ch;
    }
    else if (to_int(args[1], "proj_id", 1, 255, &proj) < 0) {
        return NULL;
    }
    PyObject *path = NULL;
    if (!PyUnicode_FSConverter(args[0], &path)) {
        return NULL;
    }
    errno = 0;
    key_t key = ftok(PyBytes_AS_STRING(path), proj);
    int err = errno;
    if (key == (key_t)-1 && err != 0) {
        PyObject *msg =
            PyUnicode_FromFormat("%s (originated from ftok)", strerror(err));
        PyObject *exc_args =
            msg ? Py_BuildValue("(iNO)", err, msg, args[0]) : NULL;
        if (exc_args) {
            PyErr_SetObject(PyExc_OSError, exc_args);
            Py_DECREF(exc_args);
        }
        Py_DECREF(path);
        (void)st;
        return NULL;
    }
    Py_DECREF(path);
    return key_to_python(key);
}

PyDoc_STRVAR(
    canonical_key_doc,
    "canonical_key(key, /)\n--\n\n"
    "Return key in its canonical form: the unsigned 32-bit value "
    "0..0xffffffff,\n"
    "as ipcs prints it.  Both spellings of a key_t are accepted (0..2**32-1 "
    "and\n"
    "the signed range -2**31..2**31-1, so -1 and 0xffffffff are the same "
    "key);\n"
    "anything wider raises ValueError.");

static PyObject *
sysvipc_canonical_key(PyObject *module, PyObject *arg)
{
    key_t key;
    if (to_key(arg, &key) < 0) {
        return NULL;
    }
    return key_to_python(key);
}

/* ------------------------------------------------------------------------ */
/* Structures (returned as tuples; sysvipc._structs names the fields)        */
/* ------------------------------------------------------------------------ */

static PyObject *
build_ipc_perm(const struct ipc_perm *p)
{
#if defined(__GLIBC__)
    unsigned long long key = (uint32_t)p->__key;
    long long seq = (long long)p->__seq;
#else
    unsigned long long key = (uint32_t)p->__ipc_perm_key;
    long long seq = (long long)p->__ipc_perm_seq;
#endif
    return Py_BuildValue(
        "(KKKKKKL)", key, (unsigned long long)p->uid,
        (unsigned long long)p->gid, (unsigned long long)p->cuid,
        (unsigned long long)p->cgid, (unsigned long long)p->mode, seq);
}

static PyObject *
build_msqid_ds(const struct msqid_ds *d)
{
    return Py_BuildValue(
        "(NLLLKKKLL)", build_ipc_perm(&d->msg_perm), (long long)d->msg_stime,
        (long long)d->msg_rtime, (long long)d->msg_ctime,
        (unsigned long long)d->msg_cbytes, (unsigned long long)d->msg_qnum,
        (unsigned long long)d->msg_qbytes, (long long)d->msg_lspid,
        (long long)d->msg_lrpid);
}

static PyObject *
build_semid_ds(const struct semid_ds *d)
{
    return Py_BuildValue("(NLLK)", build_ipc_perm(&d->sem_perm),
                         (long long)d->sem_otime, (long long)d->sem_ctime,
                         (unsigned long long)d->sem_nsems);
}

static PyObject *
build_shmid_ds(const struct shmid_ds *d)
{
    return Py_BuildValue("(NKLLLLLK)", build_ipc_perm(&d->shm_perm),
                         (unsigned long long)d->shm_segsz,
                         (long long)d->shm_atime, (long long)d->shm_dtime,
                         (long long)d->shm_ctime, (long long)d->shm_cpid,
                         (long long)d->shm_lpid,
                         (unsigned long long)d->shm_nattch);
}

static PyObject *
build_msginfo(const struct msginfo *i)
{
    return Py_BuildValue("(iiiiiiii)", i->msgpool, i->msgmap, i->msgmax,
                         i->msgmnb, i->msgmni, i->msgssz, i->msgtql,
                         (int)i->msgseg);
}

static PyObject *
build_seminfo(const struct seminfo *i)
{
    return Py_BuildValue("(iiiiiiiiii)", i->semmap, i->semmni, i->semmns,
                         i->semmnu, i->semmsl, i->semopm, i->semume, i->semusz,
                         i->semvmx, i->semaem);
}

static PyObject *
build_shminfo(const struct shminfo *i)
{
    return Py_BuildValue(
        "(KKKKK)", (unsigned long long)i->shmmax,
        (unsigned long long)i->shmmin, (unsigned long long)i->shmmni,
        (unsigned long long)i->shmseg, (unsigned long long)i->shmall);
}

static PyObject *
build_shm_info(const struct shm_info *i)
{
    return Py_BuildValue(
        "(iKKKKK)", i->used_ids, (unsigned long long)i->shm_tot,
        (unsigned long long)i->shm_rss, (unsigned long long)i->shm_swp,
        (unsigned long long)i->swap_attempts,
        (unsigned long long)i->swap_successes);
}

/*
 * IPC_SET needs the current values of the fields not being changed, but
 * IPC_STAT needs read permission, which IPC_SET does not (an owner may
 * chmod an object back from mode 0).  On EACCES, read them with
 * *_STAT_ANY (Linux 4.17), whose argument is the index in the kernel's
 * table: the low bits of the id (15, or 24 with ipcmni_extend), confirmed
 * by the id it returns.  Returns 0, or -1 with errno set.
 */
#define STAT_FOR_SET(name, ds_type, stat_call, stat_any_call) \
    static int name(int id, ds_type *ds)                      \
    {                                                         \
        if (stat_call(id, IPC_STAT, ds) == 0) {               \
            return 0;                                         \
        }                                                     \
        if (errno != EACCES) {                                \
            return -1;                                        \
        }                                                     \
        static const int masks[] = {0x7fff, 0xffffff};        \
        for (size_t i = 0; i < 2; i++) {                      \
            if (stat_any_call(id & masks[i], ds) == id) {     \
                return 0;                                     \
            }                                                 \
        }                                                     \
        errno = EACCES;                                       \
        return -1;                                            \
    }

#ifdef MSG_STAT_ANY
#define MSG_STAT_ANY_CALL(idx, ds) msgctl((idx), MSG_STAT_ANY, (ds))
#define SEM_STAT_ANY_CALL(idx, ds) \
    semctl((idx), 0, SEM_STAT_ANY, (union semun){.buf = (ds)})
#define SHM_STAT_ANY_CALL(idx, ds) shmctl((idx), SHM_STAT_ANY, (ds))
#else
#define MSG_STAT_ANY_CALL(idx, ds) (-1)
#define SEM_STAT_ANY_CALL(idx, ds) (-1)
#define SHM_STAT_ANY_CALL(idx, ds) (-1)
#endif

static int
sem_stat_call(int id, int cmd, struct semid_ds *ds)
{
    return semctl(id, 0, cmd, (union semun){.buf = ds});
}

STAT_FOR_SET(msg_stat_for_set, struct msqid_ds, msgctl, MSG_STAT_ANY_CALL)
STAT_FOR_SET(sem_stat_for_set, struct semid_ds, sem_stat_call,
             SEM_STAT_ANY_CALL)
STAT_FOR_SET(shm_stat_for_set, struct shmid_ds, shmctl, SHM_STAT_ANY_CALL)

/*
 * IPC_SET takes (uid, gid, mode[, qbytes]); None keeps the current value.
 * The caller has filled `perm` by IPC_STAT.
 */
static int
apply_perm_changes(PyObject *changes, Py_ssize_t nfields,
                   struct ipc_perm *perm, unsigned long long *qbytes)
{
    if (!PyTuple_Check(changes) || PyTuple_GET_SIZE(changes) != nfields) {
        PyErr_Format(PyExc_TypeError,
                     "IPC_SET takes a tuple of %zd values "
                     "(uid, gid, mode%s), None for unchanged",
                     nfields, nfields == 4 ? ", qbytes" : "");
        return -1;
    }
    long long v;
    PyObject *item = PyTuple_GET_ITEM(changes, 0);
    if (item != Py_None) {
        if (to_llong(item, "uid", 0, UINT32_MAX - 1, &v) < 0) {
            return -1;
        }
        perm->uid = (uid_t)v;
    }
    item = PyTuple_GET_ITEM(changes, 1);
    if (item != Py_None) {
        if (to_llong(item, "gid", 0, UINT32_MAX - 1, &v) < 0) {
            return -1;
        }
        perm->gid = (gid_t)v;
    }
    item = PyTuple_GET_ITEM(changes, 2);
    if (item != Py_None) {
        if (to_llong(item, "mode", 0, 0777, &v) < 0) {
            return -1;
        }
        perm->mode = (perm->mode & ~0777) | (mode_t)v;
    }
    if (nfields == 4) {
        item = PyTuple_GET_ITEM(changes, 3);
        if (item != Py_None) {
            unsigned long long q;
            if (to_ullong(item, "qbytes", ULONG_MAX, &q) < 0) {
                return -1;
            }
            *qbytes = q;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Message: what a receive returns                                           */
/* ------------------------------------------------------------------------ */

/*
 * A tuple (data, type) with names: unpacks, compares and pickles as a tuple.
 * A tuple subclass rather than a struct sequence, whose creation looks its
 * field counts up in the type's dict on every call (3.11-3.13): a receive
 * returns one of these each time.
 */

/*
 * A Message with both items NULL, to be filled before anyone sees it.  Not
 * tracked by the garbage collector: a received Message holds a bytes and an
 * int, which can form no cycle (Message(...) from Python is tracked).
 */
static PyObject *
message_alloc(module_state *st)
{
    PyObject *message =
        (PyObject *)PyObject_GC_NewVar(PyTupleObject, st->MessageType, 2);
    if (message != NULL) {
        PyTuple_SET_ITEM(message, 0, NULL);
        PyTuple_SET_ITEM(message, 1, NULL);
    }
    return message;
}

static void
message_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (!PyObject_GC_IsTracked(self)) { // received: a bytes and an int
        Py_XDECREF(PyTuple_GET_ITEM(self, 0));
        Py_XDECREF(PyTuple_GET_ITEM(self, 1));
        tp->tp_free(self);
        Py_DECREF(tp);
        return;
    }
    // Made from Python: it may hold anything, nested deeply (as tuple does).
    PyObject_GC_UnTrack(self);
    // clang-format off
    Py_TRASHCAN_BEGIN(self, message_dealloc)
    Py_XDECREF(PyTuple_GET_ITEM(self, 0));
    Py_XDECREF(PyTuple_GET_ITEM(self, 1));
    tp->tp_free(self);
    Py_DECREF(tp);
    Py_TRASHCAN_END
    // clang-format on
}

static PyObject *
message_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"data", "type", NULL};
    PyObject *data, *type = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:Message", kwlist, &data,
                                     &type)) {
        return NULL;
    }
    PyObject *items = type ? PyTuple_Pack(2, data, type)
                           : PySequence_Tuple(data); // Message((d, t))
    if (items == NULL) {
        return NULL;
    }
    if (PyTuple_GET_SIZE(items) != 2) {
        Py_DECREF(items);
        PyErr_SetString(PyExc_TypeError, "Message takes (data, type)");
        return NULL;
    }
    PyObject *message = tp->tp_alloc(tp, 2);
    if (message != NULL) {
        for (Py_ssize_t i = 0; i < 2; i++) {
            PyTuple_SET_ITEM(message, i,
                             Py_NewRef(PyTuple_GET_ITEM(items, i)));
        }
    }
    Py_DECREF(items);
    return message;
}

static PyObject *
message_repr(PyObject *self)
{
    return PyUnicode_FromFormat("sysvipc.Message(data=%R, type=%R)",
                                PyTuple_GET_ITEM(self, 0),
                                PyTuple_GET_ITEM(self, 1));
}

/* Members rather than getters: the interpreter specializes their access. */
static PyMemberDef message_members[] = {
    {"data", T_OBJECT_EX, offsetof(PyTupleObject, ob_item), READONLY,
     "The payload (bytes)."},
    {"type", T_OBJECT_EX,
     offsetof(PyTupleObject, ob_item) + sizeof(PyObject *), READONLY,
     "The message type (an int >= 1)."},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot message_slots[] = {
    {Py_tp_new, message_new},
    {Py_tp_dealloc, message_dealloc},
    {Py_tp_repr, message_repr},
    {Py_tp_members, message_members},
    {Py_tp_doc, (void *)"Message(data, type=None)\n--\n\n"
                        "A received message: a tuple (data, type) with "
                        "named fields."},
    {0, NULL},
};

static PyType_Spec message_spec = {
    .name = "sysvipc.Message",
    .basicsize = 0,
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = message_slots,
};

/* ------------------------------------------------------------------------ */
/* Message queues                                                            */
/* ------------------------------------------------------------------------ */

PyDoc_STRVAR(
    msgget_doc,
    "msgget(key, flags=0, mode=0o600)\n--\n\n"
    "Return the id of the message queue for key (msgget(2)).\n"
    "flags: IPC_CREAT and/or IPC_EXCL; mode: permission bits 0..0o777.");

static PyObject *
sysvipc_msgget(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    static const char *const names[] = {"key", "flags", "mode"};
    PyObject *a[3];
    key_t key;
    int flags, mode;
    if (parse_args("msgget", args, nargs, kwnames, names, 3, 3, 1, a) < 0 ||
        to_key(a[0], &key) < 0 ||
        opt_int(a[1], "flags", INT_MIN, INT_MAX, 0, &flags) < 0 ||
        check_flags(flags, IPC_CREAT | IPC_EXCL, "msgget") < 0 ||
        opt_int(a[2], "mode", 0, 0777, 0600, &mode) < 0) {
        return NULL;
    }
    int id = msgget(key, flags | mode);
    if (id < 0) {
        return raise_errno_key(get_state(module), errno, "msgget", key);
    }
    return PyLong_FromLong(id);
}

/* 1 (ValueError set) if a message of len bytes can never fit in the queue:
 * a blocking msgsnd would wait forever.  The kernel admits a message when
 * bytes + len <= msg_qbytes and messages + 1 <= msg_qbytes (msg_qbytes
 * limits the message count too), so even an empty queue refuses it when
 * len > msg_qbytes or msg_qbytes is 0.  Checked only when a send has to
 * wait, so it costs nothing on the fast path. */
static int
message_never_fits(int msqid, Py_ssize_t len)
{
    struct msqid_ds ds;
    if (msgctl(msqid, IPC_STAT, &ds) < 0 ||
        ((msglen_t)len <= ds.msg_qbytes && ds.msg_qbytes >= 1)) {
        return 0;
    }
    PyErr_Format(PyExc_ValueError,
                 "a message of %zd bytes can never fit in this queue "
                 "(msg_qbytes is %lu, which also limits the number of "
                 "messages): sending it would wait forever",
                 len, (unsigned long)ds.msg_qbytes);
    return 1;
}

/* If msgsnd said EINVAL for a message over msgmax, say so plainly. */
static int
message_too_long(Py_ssize_t len)
{
    struct msginfo info;
    if (msgctl(0, IPC_INFO, (struct msqid_ds *)(void *)&info) < 0) {
        return 0;
    }
    if (len > info.msgmax) {
        PyErr_Format(PyExc_ValueError,
                     "message of %zd bytes exceeds the kernel's msgmax limit "
                     "of %d bytes (/proc/sys/kernel/msgmax)",
                     len, info.msgmax);
        return 1;
    }
    return 0;
}

PyDoc_STRVAR(
    msgsnd_doc,
    "msgsnd(msqid, data, type=1, flags=0, *, timeout=None)\n--\n\n"
    "Send data (any C-contiguous bytes-like object) as a message of the "
    "given\n"
    "type (1..LONG_MAX) (msgsnd(2)).  flags: IPC_NOWAIT.  With a timeout in\n"
    "seconds, raise TimeoutError if the queue stays full that long.");

/* msgsnd with the timeout and EINTR logic; the argument checks are the
 * callers'. */
static PyObject *
msgsnd_impl(module_state *st, int msqid, PyObject *data, long mtype, int flags,
            int has_deadline, int64_t deadline)
{
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Py_ssize_t len = view.len;
    stack_msgbuf stackbuf;
    stack_msgbuf *msg = &stackbuf;
    if (len > STACK_MSG_SIZE) {
        if ((size_t)len > PY_SSIZE_T_MAX - sizeof(long)) {
            PyBuffer_Release(&view);
            PyErr_SetString(PyExc_ValueError, "message too large");
            return NULL;
        }
        msg = PyMem_RawMalloc(sizeof(long) + (size_t)len);
        if (msg == NULL) {
            PyBuffer_Release(&view);
            return PyErr_NoMemory();
        }
    }
    msg->mtype = mtype;
    if (len >= GIL_RELEASE_COPY_SIZE) {
        const void *src = view.buf;
        Py_BEGIN_ALLOW_THREADS
        memcpy(msg->mtext, src, (size_t)len);
        Py_END_ALLOW_THREADS
    }
    else if (len > 0) {
        memcpy(msg->mtext, view.buf, (size_t)len);
    }
    // Not held during the wait: a child forked meanwhile would inherit the
    // export with no thread left to release it.
    PyBuffer_Release(&view);

    int rc, err = 0, async_err = 0;
    waker w = {.active = 0};
    int polling = 0;
    int64_t poll_ns = POLL_MIN_NS;
    int callflags = flags;
    if (has_deadline && !(flags & IPC_NOWAIT)) {
        callflags |= IPC_NOWAIT; // first try without waiting at all
    }
    int fast = 1;
    int attempts = 0;
    for (;;) {
        int was_fast = fast;
        attempts++;
        if (fast && len < GIL_RELEASE_COPY_SIZE) {
            // First try without waiting.  A small message goes with the GIL
            // held: releasing and re-taking it costs more than the call.
            fast = 0;
            rc = msgsnd(msqid, msg, (size_t)len, flags | IPC_NOWAIT);
            err = errno;
        }
        else if (fast) {
            fast = 0;
            Py_BEGIN_ALLOW_THREADS
            rc = msgsnd(msqid, msg, (size_t)len, flags | IPC_NOWAIT);
            err = errno;
            Py_END_ALLOW_THREADS
        }
        else {
            int armed = 0;
            Py_BEGIN_ALLOW_THREADS
            armed = w.active && waker_arm(&w, deadline) == 0;
            rc = msgsnd(msqid, msg, (size_t)len,
                        armed || !w.active ? callflags
                                           : callflags | IPC_NOWAIT);
            err = errno;
            if (armed) {
                waker_disarm(&w); // before the GIL: no signal while waiting
            }
            Py_END_ALLOW_THREADS
            if (w.active && !armed) {
                waker_stop(&w); // no watchdog in this process: poll
                polling = 1;
                callflags |= IPC_NOWAIT;
            }
        }
        if (rc == 0) {
            break;
        }
        if (err == EINTR) {
            if (PyErr_CheckSignals() < 0) {
                async_err = 1;
                break;
            }
        }
        else if (!(err == EAGAIN && !(flags & IPC_NOWAIT) &&
                   (was_fast || has_deadline))) {
            break;
        }
        if (err == EAGAIN && was_fast && message_never_fits(msqid, len)) {
            async_err = 1;
            break;
        }
        if (has_deadline && !(flags & IPC_NOWAIT)) {
            int64_t now = monotonic_ns();
            if (now >= deadline) {
                err = ETIMEDOUT;
                break;
            }
            if (!w.active && !polling) {
                if (waker_start(&w) == 0) {
                    callflags = flags; // block; the watchdog ends the wait
                }
                else {
                    polling = 1;
                }
            }
            if (polling && err == EAGAIN) {
                int64_t nap =
                    poll_ns < deadline - now ? poll_ns : deadline - now;
                Py_BEGIN_ALLOW_THREADS
                sleep_ns(nap);
                Py_END_ALLOW_THREADS
                poll_ns =
                    poll_ns * 2 > POLL_MAX_NS ? POLL_MAX_NS : poll_ns * 2;
                // IPC_NOWAIT calls never see EINTR: look for signals here.
                if (PyErr_CheckSignals() < 0) {
                    async_err = 1;
                    break;
                }
            }
        }
    }
    waker_stop(&w);
    if (msg != &stackbuf) {
        PyMem_RawFree(msg);
    }
    if (async_err) {
        return NULL;
    }
    if (rc < 0) {
        if (err == EINVAL && attempts > 1) {
            err = EIDRM; // valid at the first try: removed since
        }
        if (err == EINVAL && message_too_long(len)) {
            return NULL;
        }
        return raise_errno(st, err, "msgsnd", msqid);
    }
    Py_RETURN_NONE;
}

static PyObject *
sysvipc_msgsnd(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    static const char *const names[] = {"msqid", "data", "type", "flags",
                                        "timeout"};
    PyObject *a[5];
    module_state *st = get_state(module);
    int msqid, flags;
    long long mtype = 1;
    int has_deadline;
    int64_t deadline;
    if (parse_args("msgsnd", args, nargs, kwnames, names, 5, 4, 2, a) < 0 ||
        to_id(a[0], "msqid", &msqid) < 0 ||
        (a[2] != NULL && to_llong(a[2], "type", 1, LONG_MAX, &mtype) < 0) ||
        opt_int(a[3], "flags", INT_MIN, INT_MAX, 0, &flags) < 0 ||
        check_flags(flags, IPC_NOWAIT, "msgsnd") < 0 ||
        parse_timeout(a[4], &has_deadline, &deadline) < 0) {
        return NULL;
    }

    return msgsnd_impl(st, msqid, a[1], (long)mtype, flags, has_deadline,
                       deadline);
}

/*
 * Whether to try a call without waiting first, with the GIL held.  That
 * saves a GIL round trip when the call need not wait, and wastes a syscall
 * when it must (ping-pong).  A handle learns which: after a first try that
 * would have blocked, the next 1, 3, 7 ... 63 calls skip it; a first try
 * that succeeds resets the count.  A hint, so races on it are harmless.
 */
typedef struct {
    unsigned char skip;
    unsigned char misses;
} fast_hint;

static inline int
fast_hint_try(fast_hint *h)
{
    if (h != NULL && h->skip > 0) {
        h->skip--;
        return 0;
    }
    return 1;
}

static inline void
fast_hint_result(fast_hint *h, int would_block)
{
    if (h == NULL) {
        return;
    }
    if (would_block) {
        if (h->misses < 6) {
            h->misses++;
        }
        h->skip = (unsigned char)((1u << h->misses) - 1);
    }
    else {
        h->misses = 0;
    }
}

/*
 * The receive loop shared by msgrcv and msgrcv_into: receive into `buf`
 * (capacity `cap`), with the timeout logic of msgsnd.  Returns the payload
 * length or -1 with *err set (0 in *err means a Python exception is set).
 */
static Py_ssize_t
receive_loop(int msqid, void *buf, size_t cap, long mtype, int flags,
             int has_deadline, int64_t deadline, fast_hint *hint, int *err)
{
    ssize_t n;
    int e = 0;
    waker w = {.active = 0};
    int polling = 0;
    int64_t poll_ns = POLL_MIN_NS;
    int timed = has_deadline && !(flags & IPC_NOWAIT);
    int callflags = timed ? (flags | IPC_NOWAIT) : flags;
    // A non-blocking call is always made with the GIL held; only calls
    // that may wait consult (and teach) the hint.
    int nowait = (flags & IPC_NOWAIT) != 0;
    int fast = cap < GIL_RELEASE_COPY_SIZE && (nowait || fast_hint_try(hint));
    int attempts = 0;
    for (;;) {
        int was_fast = fast;
        attempts++;
        if (fast) {
            // As in msgsnd: no GIL round trip for a call that need not wait.
            fast = 0;
            n = msgrcv(msqid, buf, cap, mtype, flags | IPC_NOWAIT);
            e = errno;
            if (!nowait) {
                fast_hint_result(hint, n < 0 && e == ENOMSG);
            }
        }
        else {
            int armed = 0;
            Py_BEGIN_ALLOW_THREADS
            armed = w.active && waker_arm(&w, deadline) == 0;
            n = msgrcv(msqid, buf, cap, mtype,
                       armed || !w.active ? callflags
                                          : callflags | IPC_NOWAIT);
            e = errno;
            if (armed) {
                waker_disarm(&w); // before the GIL: no signal while waiting
            }
            Py_END_ALLOW_THREADS
            if (w.active && !armed) {
                waker_stop(&w); // no watchdog in this process: poll
                polling = 1;
                callflags |= IPC_NOWAIT;
            }
        }
        if (n >= 0) {
            break;
        }
        if (e == EINTR) {
            if (PyErr_CheckSignals() < 0) {
                e = 0;
                break;
            }
        }
        else if (!(e == ENOMSG && !(flags & IPC_NOWAIT) &&
                   (was_fast || timed))) {
            break;
        }
        if (timed) {
            int64_t now = monotonic_ns();
            if (now >= deadline) {
                e = ETIMEDOUT;
                break;
            }
            if (!w.active && !polling) {
                if (waker_start(&w) == 0) {
                    callflags = flags;
                }
                else {
                    polling = 1;
                }
            }
            if (polling && e == ENOMSG) {
                int64_t nap =
                    poll_ns < deadline - now ? poll_ns : deadline - now;
                Py_BEGIN_ALLOW_THREADS
                sleep_ns(nap);
                Py_END_ALLOW_THREADS
                poll_ns =
                    poll_ns * 2 > POLL_MAX_NS ? POLL_MAX_NS : poll_ns * 2;
                // IPC_NOWAIT calls never see EINTR: look for signals here.
                if (PyErr_CheckSignals() < 0) {
                    e = 0;
                    n = -1;
                    break;
                }
            }
        }
    }
    waker_stop(&w);
    if (n < 0) {
        // EINVAL on a retry: the id was valid at the first try, so the
        // queue was removed in between (e.g. while a signal handler ran).
        *err = (e == EINVAL && attempts > 1) ? EIDRM : e;
        return -1;
    }
    return (Py_ssize_t)n;
}

/* max_size meaning "whatever size the message has". */
#define ANY_SIZE ((size_t)-1)

/* The kernel's msgmax now, or 0 if it cannot be read. */
static size_t
current_msgmax(void)
{
    struct msginfo info;
    if (msgctl(0, IPC_INFO, (struct msqid_ds *)(void *)&info) < 0 ||
        info.msgmax <= 0) {
        return 0;
    }
    return (size_t)info.msgmax;
}

/*
 * A bytes object holding the n bytes at src, for a message msgrcv has
 * already taken: this cannot fail.  `spare` (a new reference, at least n
 * bytes, allocated before the msgrcv call) is shrunk in place when an
 * exact-size copy cannot be allocated; src may lie inside spare.
 */
static PyObject *
bytes_from_spare(PyObject *spare, const char *src, Py_ssize_t n)
{
    if (n <= 1) {
        // The empty and one-byte bytes objects are the interpreter's
        // static singletons: no allocation, so no failure.
        Py_DECREF(spare);
        PyObject *small = PyBytes_FromStringAndSize(src, n);
        assert(small != NULL);
        return small;
    }
    if (PyBytes_GET_SIZE(spare) != n) {
        PyObject *exact = PyBytes_FromStringAndSize(src, n);
        if (exact != NULL) {
            Py_DECREF(spare);
            return exact;
        }
        PyErr_Clear(); // no memory left: keep the larger block
    }
    char *dst = PyBytes_AS_STRING(spare);
    if (dst != src) {
        memmove(dst, src, (size_t)n);
    }
    Py_SET_SIZE(spare, n);
    dst[n] = '\0';
    return spare;
}

/*
 * An int made after msgrcv took a message.  The public C API cannot build
 * an int in memory reserved earlier, so *spare (an int as large as any
 * long, made before msgrcv) is freed to make room for a second try when
 * the first fails.  Ints up to 256 are cached and never fail.
 */
static PyObject *
long_after_receive(long long value, PyObject **spare)
{
    PyObject *v = PyLong_FromLongLong(value);
    if (v == NULL && *spare != NULL) {
        PyErr_Clear();
        Py_CLEAR(*spare);
        v = PyLong_FromLongLong(value);
    }
    return v;
}

/*
 * Receive into the stack buffer first; only a message longer than that
 * (E2BIG leaves it queued) costs a heap buffer: of max_size bytes, or for
 * ANY_SIZE of the kernel's msgmax, grown until the message fits.
 *
 * With data == NULL, on success *out points at the message (free it if it
 * is not stackbuf).  With data != NULL the payload comes back as a bytes
 * object in *data and *got_type holds the type; *out is unused.  msgrcv
 * cannot be undone, so in that case every buffer the payload can end in is
 * allocated before each msgrcv call: nothing can fail once a message is
 * taken (a MemoryError always leaves it queued).
 */
static Py_ssize_t
receive_message(module_state *st, int msqid, size_t max_size, long mtype,
                fast_hint *hint, int flags, int has_deadline, int64_t deadline,
                stack_msgbuf *stackbuf, stack_msgbuf **out, PyObject **data,
                long *got_type)
{
    int err = 0;
    Py_ssize_t n;
    size_t first = max_size < STACK_MSG_SIZE ? max_size : STACK_MSG_SIZE;
    PyObject *spare = NULL;
    if (data != NULL) {
        *data = NULL;
        spare = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)first);
        if (spare == NULL) {
            return -1;
        }
    }
    *out = stackbuf;
    if (max_size <= STACK_MSG_SIZE) {
        n = receive_loop(msqid, stackbuf, max_size, mtype, flags, has_deadline,
                         deadline, hint, &err);
    }
    else {
        n = receive_loop(msqid, stackbuf, STACK_MSG_SIZE, mtype,
                         flags & ~MSG_NOERROR, has_deadline, deadline, hint,
                         &err);
        size_t cap = max_size;
        if (max_size == ANY_SIZE && n < 0 && err == E2BIG) {
            flags &= ~MSG_NOERROR; // any size fits: never truncate
            cap = current_msgmax();
            if (cap < 2 * STACK_MSG_SIZE) {
                cap = 2 * STACK_MSG_SIZE;
            }
        }
        while (n < 0 && err == E2BIG) {
            // For bytes, the heap buffer is itself a bytes object (the
            // type first, in the kernel's layout): the payload is moved
            // down over the type once received.
            PyObject *raw = NULL;
            stack_msgbuf *heap;
            if (data != NULL) {
                raw = PyBytes_FromStringAndSize(
                    NULL, (Py_ssize_t)(sizeof(long) + cap));
                heap = raw ? (stack_msgbuf *)PyBytes_AS_STRING(raw) : NULL;
            }
            else {
                heap = PyMem_RawMalloc(sizeof(long) + cap);
                if (heap == NULL) {
                    PyErr_NoMemory();
                }
            }
            if (heap == NULL) {
                Py_XDECREF(spare);
                return -1;
            }
            n = receive_loop(msqid, heap, cap, mtype, flags, has_deadline,
                             deadline, NULL, &err);
            if (n >= 0) {
                if (data != NULL) {
                    memcpy(got_type, heap, sizeof(long));
                    Py_DECREF(spare);
                    *data = bytes_from_spare(raw, heap->mtext, n);
                    return n;
                }
                *out = heap;
                break;
            }
            if (data != NULL) {
                Py_DECREF(raw);
            }
            else {
                PyMem_RawFree(heap);
            }
            if (max_size != ANY_SIZE || cap >= INT_MAX) {
                break;
            }
            cap = cap * 2 > INT_MAX ? INT_MAX : cap * 2;
        }
    }
    if (n < 0) {
        Py_XDECREF(spare);
        if (err != 0) {
            raise_errno(st, err, "msgrcv", msqid);
        }
        return n;
    }
    if (data != NULL) {
        // Received into the stack buffer: at most `first` bytes.
        *got_type = stackbuf->mtype;
        *data = bytes_from_spare(spare, stackbuf->mtext, n);
    }
    return n;
}

#define MSGRCV_FLAGS (IPC_NOWAIT | MSG_NOERROR | MSG_EXCEPT | MSG_COPY)

static int
check_receive_flags(int flags, const char *fname)
{
    if (check_flags(flags, MSGRCV_FLAGS, fname) < 0) {
        return -1;
    }
    if ((flags & MSG_COPY) && (flags & MSG_EXCEPT)) {
        PyErr_Format(PyExc_ValueError,
                     "%s(): MSG_COPY and MSG_EXCEPT cannot be combined",
                     fname);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(
    msgrcv_doc,
    "msgrcv(msqid, max_size=None, type=0, flags=0, *, timeout=None)\n--\n\n"
    "Receive a message of at most max_size bytes (None: any size the kernel\n"
    "allows, without allocating that much up front) (msgrcv(2)); return a\n"
    "Message (data, type).  type 0: the first message; >0: the first of that\n"
    "type; <0: the first of the lowest type <= abs(type).  flags: "
    "IPC_NOWAIT,\n"
    "MSG_NOERROR (truncate), MSG_EXCEPT, MSG_COPY (read the message at index\n"
    "`type` without removing it; implies IPC_NOWAIT).");

static PyObject *
msgrcv_impl(module_state *st, int msqid, size_t max_size, long mtype,
            fast_hint *hint, int flags, int has_deadline, int64_t deadline)
{
    if (flags & MSG_COPY) {
        flags |= IPC_NOWAIT; // the kernel requires it
    }
    // The Message, and its type when the call determines it, exist before
    // msgrcv takes the message (receive_message does the same for the
    // payload).  Types up to 256 are the interpreter's cached ints.
    PyObject *message = message_alloc(st);
    if (message == NULL) {
        return NULL;
    }
    PyObject *type = NULL;
    if (mtype > 0 && !(flags & (MSG_EXCEPT | MSG_COPY))) {
        type = PyLong_FromLong(mtype); // the only type it can receive
        if (type == NULL) {
            Py_DECREF(message);
            return NULL;
        }
    }
    PyObject *spare = type ? NULL : PyLong_FromLong(LONG_MAX);
    if (type == NULL && spare == NULL) {
        Py_DECREF(message);
        return NULL;
    }
    stack_msgbuf stackbuf, *msg;
    PyObject *data;
    long got_type = 0;
    Py_ssize_t n =
        receive_message(st, msqid, max_size, mtype, hint, flags, has_deadline,
                        deadline, &stackbuf, &msg, &data, &got_type);
    if (n < 0) {
        Py_XDECREF(type);
        Py_XDECREF(spare);
        Py_DECREF(message);
        return NULL;
    }
    if (type == NULL) {
        type = long_after_receive(got_type, &spare);
        Py_XDECREF(spare);
        if (type == NULL) {
            Py_DECREF(data);
            Py_DECREF(message);
            return NULL;
        }
    }
    PyTuple_SET_ITEM(message, 0, data);
    PyTuple_SET_ITEM(message, 1, type);
    return message;
}

static PyObject *
sysvipc_msgrcv(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    static const char *const names[] = {"msqid", "max_size", "type", "flags",
                                        "timeout"};
    PyObject *a[5];
    module_state *st = get_state(module);
    int msqid, flags;
    long long mtype = 0;
    unsigned long long max_size = ANY_SIZE;
    int has_deadline;
    int64_t deadline;
    if (parse_args("msgrcv", args, nargs, kwnames, names, 5, 4, 1, a) < 0 ||
        to_id(a[0], "msqid", &msqid) < 0 ||
        (a[1] != NULL && a[1] != Py_None &&
         to_ullong(a[1], "max_size", PY_SSIZE_T_MAX - sizeof(long),
                   &max_size) < 0) ||
        (a[2] != NULL &&
         to_llong(a[2], "type", LONG_MIN, LONG_MAX, &mtype) < 0) ||
        opt_int(a[3], "flags", INT_MIN, INT_MAX, 0, &flags) < 0 ||
        check_receive_flags(flags, "msgrcv") < 0 ||
        parse_timeout(a[4], &has_deadline, &deadline) < 0) {
        return NULL;
    }
    return msgrcv_impl(st, msqid, (size_t)max_size, (long)mtype, NULL, flags,
                       has_deadline, deadline);
}

PyDoc_STRVAR(
    msgrcv_into_doc,
    "msgrcv_into(msqid, buffer, type=0, flags=0, *, timeout=None)\n--\n\n"
    "Receive a message into a writable buffer; return (nbytes, type).  The\n"
    "buffer's length is the largest message accepted: a longer one raises\n"
    "OSError(E2BIG) and stays queued unless flags has MSG_NOERROR.");

static PyObject *
msgrcv_into_impl(module_state *st, int msqid, PyObject *buffer, long mtype,
                 fast_hint *hint, int flags, int has_deadline,
                 int64_t deadline, const char *fname)
{
    if (flags & MSG_COPY) {
        flags |= IPC_NOWAIT;
    }
    Py_buffer view;
    if (get_writable_buffer(buffer, &view, fname) < 0) {
        return NULL;
    }
    // The result tuple exists before msgrcv takes the message.
    PyObject *result = PyTuple_New(2);
    PyObject *spare = result ? PyLong_FromLong(LONG_MAX) : NULL;
    if (spare == NULL) {
        Py_XDECREF(result);
        PyBuffer_Release(&view);
        return NULL;
    }
    stack_msgbuf stackbuf, *msg;
    Py_ssize_t n =
        receive_message(st, msqid, (size_t)view.len, mtype, hint, flags,
                        has_deadline, deadline, &stackbuf, &msg, NULL, NULL);
    long got_type = 0;
    if (n >= 0) {
        got_type = msg->mtype;
        if (n >= GIL_RELEASE_COPY_SIZE) {
            void *dst = view.buf;
            Py_BEGIN_ALLOW_THREADS
            memcpy(dst, msg->mtext, (size_t)n);
            Py_END_ALLOW_THREADS
        }
        else if (n > 0) {
            memcpy(view.buf, msg->mtext, (size_t)n);
        }
        if (msg != &stackbuf) {
            PyMem_RawFree(msg);
        }
    }
    PyBuffer_Release(&view);
    if (n < 0) {
        Py_DECREF(spare);
        Py_DECREF(result);
        return NULL;
    }
    PyObject *count = long_after_receive(n, &spare);
    PyObject *type = count ? long_after_receive(got_type, &spare) : NULL;
    Py_XDECREF(spare);
    if (type == NULL) {
        Py_XDECREF(count);
        Py_DECREF(result);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, count);
    PyTuple_SET_ITEM(result, 1, type);
    return result;
}

static PyObject *
sysvipc_msgrcv_into(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames)
{
    static const char *const names[] = {"msqid", "buffer", "type", "flags",
                                        "timeout"};
    PyObject *a[5];
    module_state *st = get_state(module);
    int msqid, flags;
    long long mtype = 0;
    int has_deadline;
    int64_t deadline;
    if (parse_args("msgrcv_into", args, nargs, kwnames, names, 5, 4, 2, a) <
            0 ||
        to_id(a[0], "msqid", &msqid) < 0 ||
        (a[2] != NULL &&
         to_llong(a[2], "type", LONG_MIN, LONG_MAX, &mtype) < 0) ||
        opt_int(a[3], "flags", INT_MIN, INT_MAX, 0, &flags) < 0 ||
        check_receive_flags(flags, "msgrcv_into") < 0 ||
        parse_timeout(a[4], &has_deadline, &deadline) < 0) {
        return NULL;
    }
    return msgrcv_into_impl(st, msqid, a[1], (long)mtype, NULL, flags,
                            has_deadline, deadline, "msgrcv_into");
}

PyDoc_STRVAR(
    msgctl_doc,
    "msgctl(msqid, cmd, arg=None)\n--\n\n"
    "msgctl(2).  IPC_STAT, MSG_STAT, MSG_STAT_ANY: return the msqid_ds "
    "fields\n"
    "as a tuple (MSG_STAT*: (msqid, fields), msqid being an index there).\n"
    "IPC_SET: arg is (uid, gid, mode, qbytes), None for unchanged.\n"
    "IPC_RMID: remove.  IPC_INFO, MSG_INFO: return (index, msginfo fields).");

static PyObject *
sysvipc_msgctl(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    static const char *const names[] = {"msqid", "cmd", "arg"};
    PyObject *a[3];
    module_state *st = get_state(module);
    int msqid, cmd, rc, err;
    if (parse_args("msgctl", args, nargs, kwnames, names, 3, 3, 2, a) < 0 ||
        to_id(a[0], "msqid", &msqid) < 0 ||
        to_int(a[1], "cmd", INT_MIN, INT_MAX, &cmd) < 0) {
        return NULL;
    }
    struct msqid_ds ds;
    memset(&ds, 0, sizeof(ds));
    switch (cmd) {
    case IPC_STAT:
#ifdef MSG_STAT
    case MSG_STAT:
#endif
#ifdef MSG_STAT_ANY
    case MSG_STAT_ANY:
#endif
        rc = msgctl(msqid, cmd, &ds);
        if (rc < 0) {
            return raise_errno(st, errno, "msgctl", msqid);
        }
        if (cmd == IPC_STAT) {
            return build_msqid_ds(&ds);
        }
        return Py_BuildValue("(iN)", rc, build_msqid_ds(&ds));
    case IPC_SET: {
        if (a[2] == NULL) {
            PyErr_SetString(PyExc_TypeError,
                            "msgctl(IPC_SET) needs arg=(uid, gid, mode, "
                            "qbytes)");
            return NULL;
        }
        if (msg_stat_for_set(msqid, &ds) < 0) {
            return raise_errno(st, errno, "msgctl", msqid);
        }
        unsigned long long qbytes = ds.msg_qbytes;
        if (apply_perm_changes(a[2], 4, &ds.msg_perm, &qbytes) < 0) {
            return NULL;
        }
        ds.msg_qbytes = (msglen_t)qbytes;
        if (msgctl(msqid, IPC_SET, &ds) < 0) {
            return raise_errno(st, errno, "msgctl", msqid);
        }
        Py_RETURN_NONE;
    }
    case IPC_RMID:
        Py_BEGIN_ALLOW_THREADS
        rc = msgctl(msqid, IPC_RMID, NULL);
        err = errno;
        Py_END_ALLOW_THREADS
        if (rc < 0) {
            return raise_errno(st, err, "msgctl", msqid);
        }
        Py_RETURN_NONE;
    case IPC_INFO:
#ifdef MSG_INFO
    case MSG_INFO:
#endif
    {
        struct msginfo info;
        memset(&info, 0, sizeof(info));
        rc = msgctl(msqid, cmd, (struct msqid_ds *)(void *)&info);
        if (rc < 0) {
            return raise_errno(st, errno, "msgctl", msqid);
        }
        return Py_BuildValue("(iN)", rc, build_msginfo(&info));
    }
    default:
        PyErr_Format(PyExc_ValueError, "msgctl(): unknown command %d", cmd);
        return NULL;
    }
}

/* ------------------------------------------------------------------------ */
/* Semaphore sets                                                            */
/* ------------------------------------------------------------------------ */

PyDoc_STRVAR(
    semget_doc,
    "semget(key, nsems=0, flags=0, mode=0o600)\n--\n\n"
    "Return the id of the semaphore set for key (semget(2)).  nsems may be 0\n"
    "when opening an existing set.  The kernel does not initialise values.");

static PyObject *
sysvipc_semget(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    static const char *const names[] = {"key", "nsems", "flags", "mode"};
    PyObject *a[4];
    key_t key;
    int nsems, flags, mode;
    if (parse_args("semget", args, nargs, kwnames, names, 4, 4, 1, a) < 0 ||
        to_key(a[0], &key) < 0 ||
        opt_int(a[1], "nsems", 0, INT_MAX, 0, &nsems) < 0 ||
        opt_int(a[2], "flags", INT_MIN, INT_MAX, 0, &flags) < 0 ||
        check_flags(flags, IPC_CREAT | IPC_EXCL, "semget") < 0 ||
        opt_int(a[3], "mode", 0, 0777, 0600, &mode) < 0) {
        return NULL;
    }
    int id = semget(key, nsems, flags | mode);
    if (id < 0) {
        return raise_errno_key(get_state(module), errno, "semget", key);
    }
    return PyLong_FromLong(id);
}

/*
 * A tuple of a sequence argument's items (TypeError `message` for anything
 * else).  A list may change while its items are converted, since __index__
 * can run Python code, and its item array may move: a tuple cannot.
 */
static PyObject *
sequence_copy(PyObject *obj, const char *message)
{
    PyObject *seq = PySequence_Fast(obj, message);
    if (seq == NULL || PyTuple_CheckExact(seq)) {
        return seq;
    }
    PyObject *copy = PySequence_Tuple(seq);
    Py_DECREF(seq);
    return copy;
}

/* Parse one (sem_num, sem_op[, sem_flg]) operation. */
static int
parse_sembuf(PyObject *item, struct sembuf *op, int extra_flags)
{
    PyObject *seq = sequence_copy(
        item, "each operation must be a (sem_num, sem_op[, sem_flg]) tuple");
    if (seq == NULL) {
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **f = PySequence_Fast_ITEMS(seq);
    int num, delta, flg = 0;
    if (n != 2 && n != 3) {
        PyErr_SetString(PyExc_ValueError,
                        "each operation must have 2 or 3 items: "
                        "(sem_num, sem_op[, sem_flg])");
        goto error;
    }
    if (to_int(f[0], "sem_num", 0, USHRT_MAX, &num) < 0 ||
        to_int(f[1], "sem_op", SHRT_MIN, SHRT_MAX, &delta) < 0 ||
        (n == 3 && to_int(f[2], "sem_flg", 0, SHRT_MAX, &flg) < 0) ||
        check_flags(flg, IPC_NOWAIT | SEM_UNDO, "semop") < 0) {
        goto error;
    }
    op->sem_num = (unsigned short)num;
    op->sem_op = (short)delta;
    op->sem_flg = (short)(flg | extra_flags);
    Py_DECREF(seq);
    return 0;
error:
    Py_DECREF(seq);
    return -1;
}

/*
 * Run semop/semtimedop with the PEP 475 loop; the relative timeout is
 * recomputed from the deadline after every EINTR.  Returns 0, or -1 with an
 * exception set.
 */
static int
semop_core(int semid, struct sembuf *ops, size_t nops, int has_deadline,
           int64_t deadline, fast_hint *hint, int *err_out)
{
    int rc, err;
    *err_out = 0;
    // Only an operation that may wait (sem_op <= 0 without IPC_NOWAIT)
    // consults the hint: anything else never blocks.
    int may_wait = 0;
    for (size_t i = 0; i < nops; i++) {
        if (ops[i].sem_op <= 0 && !(ops[i].sem_flg & IPC_NOWAIT)) {
            may_wait = 1;
        }
    }
    if (nops <= STACK_SEMOPS && (!may_wait || fast_hint_try(hint))) {
        // Try without waiting, GIL held: an uncontended acquire or release
        // never pays for a GIL round trip.  Success means exactly what it
        // would have meant without IPC_NOWAIT; EAGAIN leads to the real call.
        struct sembuf nowait[STACK_SEMOPS];
        for (size_t i = 0; i < nops; i++) {
            nowait[i] = ops[i];
            nowait[i].sem_flg |= IPC_NOWAIT;
        }
        rc = semop(semid, nowait, nops);
        err = errno;
        if (may_wait) {
            fast_hint_result(hint, rc < 0 && err == EAGAIN);
        }
        if (rc == 0) {
            return 0;
        }
        if (err != EAGAIN) {
            *err_out = err;
            return -1;
        }
    }
    int attempts = 0;
    for (;;) {
        attempts++;
        if (has_deadline) {
            int64_t remaining = deadline - monotonic_ns();
            if (remaining < 0) {
                remaining = 0;
            }
            struct timespec ts = ns_to_timespec(remaining);
            Py_BEGIN_ALLOW_THREADS
            rc = semtimedop(semid, ops, nops, &ts);
            err = errno;
            Py_END_ALLOW_THREADS
        }
        else {
            Py_BEGIN_ALLOW_THREADS
            rc = semop(semid, ops, nops);
            err = errno;
            Py_END_ALLOW_THREADS
        }
        if (rc == 0) {
            return 0;
        }
        if (err != EINTR) {
            break;
        }
        if (PyErr_CheckSignals() < 0) {
            return -1;
        }
    }
    if (err == EAGAIN && has_deadline) {
        // EAGAIN is also IPC_NOWAIT's answer; only a passed deadline is a
        // timeout.
        if (monotonic_ns() >= deadline) {
            err = ETIMEDOUT;
        }
    }
    if (err == EINVAL && attempts > 1) {
        err = EIDRM; // valid at the first try: removed since
    }
    *err_out = err;
    return -1;
}

static int
run_semop(module_state *st, int semid, struct sembuf *ops, size_t nops,
          int has_deadline, int64_t deadline)
{
    int err;
    if (semop_core(semid, ops, nops, has_deadline, deadline, NULL, &err) ==
        0) {
        return 0;
    }
    if (err != 0) {
        raise_errno(st, err, has_deadline ? "semtimedop" : "semop", semid);
    }
    return -1;
}

PyDoc_STRVAR(
    semop_doc,
    "semop(semid, ops, *, timeout=None, flags=0)\n--\n\n"
    "Perform the operations [(sem_num, sem_op[, sem_flg]), ...] atomically:\n"
    "all of them or none (semop(2)).  sem_flg: IPC_NOWAIT, SEM_UNDO; flags "
    "is\n"
    "OR-ed into every operation.  With a timeout (seconds), semtimedop(2) is\n"
    "used and TimeoutError raised when it expires.");

static PyObject *
sysvipc_semop(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames)
{
    static const char *const names[] = {"semid", "ops", "timeout", "flags"};
    PyObject *a[4];
    module_state *st = get_state(module);
    int semid, flags;
    int has_deadline;
    int64_t deadline;
    if (parse_args("semop", args, nargs, kwnames, names, 4, 2, 2, a) < 0 ||
        to_id(a[0], "semid", &semid) < 0 ||
        parse_timeout(a[2], &has_deadline, &deadline) < 0 ||
        opt_int(a[3], "flags", INT_MIN, INT_MAX, 0, &flags) < 0 ||
        check_flags(flags, IPC_NOWAIT | SEM_UNDO, "semop") < 0) {
        return NULL;
    }
    PyObject *seq = sequence_copy(a[1], "ops must be a sequence of "
                                        "(sem_num, sem_op[, sem_flg])");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n == 0) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "ops must not be empty");
        return NULL;
    }
    if (n > USHRT_MAX) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError,
                     "too many operations (%zd); the kernel's limit is "
                     "SEMOPM (/proc/sys/kernel/sem)",
                     n);
        return NULL;
    }
    struct sembuf stackops[STACK_SEMOPS];
    struct sembuf *ops = stackops;
    if (n > STACK_SEMOPS) {
        ops = PyMem_New(struct sembuf, n);
        if (ops == NULL) {
            Py_DECREF(seq);
            return PyErr_NoMemory();
        }
    }
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (parse_sembuf(PySequence_Fast_GET_ITEM(seq, i), &ops[i], flags) <
            0) {
            goto done;
        }
    }
    if (run_semop(st, semid, ops, (size_t)n, has_deadline, deadline) == 0) {
        result = Py_NewRef(Py_None);
    }
done:
    if (ops != stackops) {
        PyMem_Free(ops);
    }
    Py_DECREF(seq);
    return result;
}

PyDoc_STRVAR(
    semop1_doc,
    "semop1(semid, sem_num, sem_op, sem_flg=0, timeout=None)\n--\n\n"
    "semop() with a single operation, without building a list: the fast path\n"
    "for acquire and release.");

static PyObject *
sysvipc_semop1(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    static const char *const names[] = {"semid", "sem_num", "sem_op",
                                        "sem_flg", "timeout"};
    PyObject *a[5];
    int semid, num, delta, flg;
    int has_deadline;
    int64_t deadline;
    if (parse_args("semop1", args, nargs, kwnames, names, 5, 5, 3, a) < 0 ||
        to_id(a[0], "semid", &semid) < 0 ||
        to_int(a[1], "sem_num", 0, USHRT_MAX, &num) < 0 ||
        to_int(a[2], "sem_op", SHRT_MIN, SHRT_MAX, &delta) < 0 ||
        opt_int(a[3], "sem_flg", 0, SHRT_MAX, 0, &flg) < 0 ||
        check_flags(flg, IPC_NOWAIT | SEM_UNDO, "semop1") < 0 ||
        parse_timeout(a[4], &has_deadline, &deadline) < 0) {
        return NULL;
    }
    struct sembuf op = {(unsigned short)num, (short)delta, (short)flg};
    if (run_semop(get_state(module), semid, &op, 1, has_deadline, deadline) <
        0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The number of semaphores in a set, for GETALL/SETALL. */
static int
semaphore_count(module_state *st, int semid, unsigned long *nsems)
{
    struct semid_ds ds;
    union semun arg;
    arg.buf = &ds;
    if (semctl(semid, 0, IPC_STAT, arg) < 0) {
        raise_errno(st, errno, "semctl", semid);
        return -1;
    }
    *nsems = ds.sem_nsems;
    return 0;
}

PyDoc_STRVAR(
    semctl_doc,
    "semctl(semid, semnum, cmd, arg=None)\n--\n\n"
    "semctl(2).  GETVAL, GETPID, GETNCNT, GETZCNT: return an int.\n"
    "SETVAL: arg is 0..SEMVMX.  GETALL: return a list; SETALL: arg is a\n"
    "sequence of nsems values.  IPC_STAT, SEM_STAT, SEM_STAT_ANY: the\n"
    "semid_ds fields (SEM_STAT*: (semid, fields)).  IPC_SET: arg is\n"
    "(uid, gid, mode), None for unchanged.  IPC_RMID.  IPC_INFO, SEM_INFO:\n"
    "(index, seminfo fields).");

static PyObject *
sysvipc_semctl(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    static const char *const names[] = {"semid", "semnum", "cmd", "arg"};
    PyObject *a[4];
    module_state *st = get_state(module);
    int semid, semnum, cmd, rc, err;
    union semun arg;
    if (parse_args("semctl", args, nargs, kwnames, names, 4, 4, 3, a) < 0 ||
        to_id(a[0], "semid", &semid) < 0 ||
        to_int(a[1], "semnum", 0, INT_MAX, &semnum) < 0 ||
        to_int(a[2], "cmd", INT_MIN, INT_MAX, &cmd) < 0) {
        return NULL;
    }
    switch (cmd) {
    case GETVAL:
    case GETPID:
    case GETNCNT:
    case GETZCNT:
        arg.val = 0;
        rc = semctl(semid, semnum, cmd, arg);
        if (rc < 0) {
            return raise_errno(st, errno, "semctl", semid);
        }
        return PyLong_FromLong(rc);
    case SETVAL: {
        int value;
        if (a[3] == NULL) {
            PyErr_SetString(PyExc_TypeError, "semctl(SETVAL) needs arg");
            return NULL;
        }
        if (to_int(a[3], "value", 0, SEMVMX, &value) < 0) {
            return NULL;
        }
        arg.val = value;
        if (semctl(semid, semnum, SETVAL, arg) < 0) {
            return raise_errno(st, errno, "semctl", semid);
        }
        Py_RETURN_NONE;
    }
    case GETALL: {
        unsigned long nsems;
        if (semaphore_count(st, semid, &nsems) < 0) {
            return NULL;
        }
        unsigned short *values = PyMem_New(unsigned short, nsems + 1);
        if (values == NULL) {
            return PyErr_NoMemory();
        }
        arg.array = values;
        if (semctl(semid, 0, GETALL, arg) < 0) {
            PyMem_Free(values);
            return raise_errno(st, errno, "semctl", semid);
        }
        PyObject *list = PyList_New((Py_ssize_t)nsems);
        for (unsigned long i = 0; list != NULL && i < nsems; i++) {
            PyObject *v = PyLong_FromLong(values[i]);
            if (v == NULL) {
                Py_CLEAR(list);
                break;
            }
            PyList_SET_ITEM(list, (Py_ssize_t)i, v);
        }
        PyMem_Free(values);
        return list;
    }
    case SETALL: {
        if (a[3] == NULL) {
            PyErr_SetString(PyExc_TypeError,
                            "semctl(SETALL) needs arg=[values]");
            return NULL;
        }
        unsigned long nsems;
        PyObject *seq = sequence_copy(a[3], "SETALL takes a sequence of "
                                            "values");
        if (seq == NULL) {
            return NULL;
        }
        if (semaphore_count(st, semid, &nsems) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        if ((unsigned long)n != nsems) {
            PyErr_Format(PyExc_ValueError,
                         "SETALL needs %lu values (the set's nsems), got %zd",
                         nsems, n);
            Py_DECREF(seq);
            return NULL;
        }
        unsigned short *values = PyMem_New(unsigned short, nsems + 1);
        if (values == NULL) {
            Py_DECREF(seq);
            return PyErr_NoMemory();
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            int v;
            if (to_int(PySequence_Fast_GET_ITEM(seq, i), "value", 0, SEMVMX,
                       &v) < 0) {
                PyMem_Free(values);
                Py_DECREF(seq);
                return NULL;
            }
            values[i] = (unsigned short)v;
        }
        Py_DECREF(seq);
        arg.array = values;
        rc = semctl(semid, 0, SETALL, arg);
        err = errno;
        PyMem_Free(values);
        if (rc < 0) {
            return raise_errno(st, err, "semctl", semid);
        }
        Py_RETURN_NONE;
    }
    case IPC_STAT:
#ifdef SEM_STAT
    case SEM_STAT:
#endif
#ifdef SEM_STAT_ANY
    case SEM_STAT_ANY:
#endif
    {
        struct semid_ds ds;
        memset(&ds, 0, sizeof(ds));
        arg.buf = &ds;
        // SEM_STAT* take an index in the kernel's array, not an id.
        rc = semctl(semid, semnum, cmd, arg);
        if (rc < 0) {
            return raise_errno(st, errno, "semctl", semid);
        }
        if (cmd == IPC_STAT) {
            return build_semid_ds(&ds);
        }
        return Py_BuildValue("(iN)", rc, build_semid_ds(&ds));
    }
    case IPC_SET: {
        struct semid_ds ds;
        if (a[3] == NULL) {
            PyErr_SetString(PyExc_TypeError,
                            "semctl(IPC_SET) needs arg=(uid, gid, mode)");
            return NULL;
        }
        arg.buf = &ds;
        if (sem_stat_for_set(semid, &ds) < 0) {
            return raise_errno(st, errno, "semctl", semid);
        }
        if (apply_perm_changes(a[3], 3, &ds.sem_perm, NULL) < 0) {
            return NULL;
        }
        if (semctl(semid, 0, IPC_SET, arg) < 0) {
            return raise_errno(st, errno, "semctl", semid);
        }
        Py_RETURN_NONE;
    }
    case IPC_RMID:
        arg.val = 0;
        Py_BEGIN_ALLOW_THREADS
        rc = semctl(semid, 0, IPC_RMID, arg);
        err = errno;
        Py_END_ALLOW_THREADS
        if (rc < 0) {
            return raise_errno(st, err, "semctl", semid);
        }
        Py_RETURN_NONE;
    case IPC_INFO:
#ifdef SEM_INFO
    case SEM_INFO:
#endif
    {
        struct seminfo info;
        memset(&info, 0, sizeof(info));
        arg.__buf = &info;
        rc = semctl(semid, 0, cmd, arg);
        if (rc < 0) {
            return raise_errno(st, errno, "semctl", semid);
        }
        return Py_BuildValue("(iN)", rc, build_seminfo(&info));
    }
    default:
        PyErr_Format(PyExc_ValueError, "semctl(): unknown command %d", cmd);
        return NULL;
    }
}

/* ------------------------------------------------------------------------ */
/* The classes' hot paths: C bases of MessageQueue, SemaphoreSet, Semaphore  */
/* ------------------------------------------------------------------------ */

/*
 * sysvipc.MessageQueue and sysvipc.SemaphoreSet keep their id and closed
 * flag in this struct, so that send/receive and acquire/release run
 * entirely in C: a Python frame in between would cost more than the
 * syscall.  Everything else about the classes is Python (sysvipc/).
 */
typedef struct {
    PyObject_HEAD
    int id;
    char closed;
    fast_hint hint;      // see fast_hint_try
    fast_hint send_hint; // when to skip send's shortcut (see mq_send)
    // The module's state, found once: the instance keeps its class alive,
    // and the class the module.
    module_state *st;
} HandleCore;

static PyObject *
handle_core_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    module_state *st = get_state_by_type(type);
    if (st == NULL) {
        return NULL;
    }
    HandleCore *self = (HandleCore *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->st = st;
        self->id = -1;
        self->closed = 1; // until __init__ has opened something
    }
    return (PyObject *)self;
}

static void
handle_core_dealloc(HandleCore *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMemberDef handle_core_members[] = {
    {"_id", T_INT, offsetof(HandleCore, id), 0, "The kernel's id."},
    {"_closed", T_BOOL, offsetof(HandleCore, closed), 0,
     "True once the handle is closed."},
    {NULL, 0, 0, 0, NULL},
};

/* Whether `id`, of the family of the syscall named (msg*, sem*, shm*),
 * names no object any more: IPC_STAT says EINVAL (or EIDRM). */
static int
id_is_gone(const char *syscall_name, int id)
{
    int rc;
    if (strncmp(syscall_name, "msg", 3) == 0) {
        struct msqid_ds ds;
        rc = msgctl(id, IPC_STAT, &ds);
    }
    else if (strncmp(syscall_name, "sem", 3) == 0) {
        struct semid_ds ds;
        union semun arg;
        arg.buf = &ds;
        rc = semctl(id, 0, IPC_STAT, arg);
    }
    else if (strncmp(syscall_name, "shm", 3) == 0) {
        struct shmid_ds ds;
        rc = shmctl(id, IPC_STAT, &ds);
    }
    else {
        return 0;
    }
    return rc < 0 && (errno == EINVAL || errno == EIDRM);
}

/*
 * The one rule for errors on a handle (every method of every class): the
 * kernel answers EINVAL, not EIDRM, for an id whose object was removed
 * before the call (EIDRM only wakes callers that were waiting), so an
 * EINVAL from a call on a handle's id whose object is gone is
 * IdentifierRemovedError.  Any other EINVAL (a uid IPC_SET cannot map, ...)
 * stays.  Returns a new reference to the exception to raise for `exc`
 * (exc itself, or the IdentifierRemovedError), or NULL with an error set.
 */
static PyObject *
removed_error(module_state *st, PyObject *exc, int id)
{
    if (!PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_OSError) ||
        PyObject_TypeCheck(exc, (PyTypeObject *)st->IdentifierRemovedError)) {
        return Py_NewRef(exc);
    }
    PyObject *code = PyObject_GetAttrString(exc, "errno");
    long err = code != NULL && PyLong_Check(code) ? PyLong_AsLong(code) : -1;
    Py_XDECREF(code);
    PyErr_Clear();
    if (err != EINVAL) {
        return Py_NewRef(exc);
    }
    // raise_errno names the syscall: "... (originated from msgctl)".
    static const char marker[] = "(originated from ";
    PyObject *text = PyObject_GetAttrString(exc, "strerror");
    const char *s =
        text != NULL && PyUnicode_Check(text) ? PyUnicode_AsUTF8(text) : NULL;
    const char *origin = s != NULL ? strstr(s, marker) : NULL;
    PyErr_Clear();
    if (origin == NULL || !id_is_gone(origin + sizeof(marker) - 1, id)) {
        Py_XDECREF(text);
        return Py_NewRef(exc);
    }
    // The same message as any other error on this object, for EIDRM.
    char syscall_name[16];
    const char *name = origin + sizeof(marker) - 1;
    size_t len = strcspn(name, ")");
    if (len >= sizeof syscall_name) {
        len = sizeof syscall_name - 1;
    }
    memcpy(syscall_name, name, len);
    syscall_name[len] = '\0';
    Py_DECREF(text);
    return make_ipc_error(st, EIDRM, syscall_name, "id", id);
}

/* removed_error applied to the error of a C method on a handle's id:
 * passes result through. */
static PyObject *
removed_if_invalid(module_state *st, PyObject *result, int id)
{
    if (result != NULL || !PyErr_ExceptionMatches(PyExc_OSError)) {
        return result;
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *removed = value ? removed_error(st, value, id) : NULL;
    if (removed == NULL || removed == value) {
        Py_XDECREF(removed);
        PyErr_Restore(type, value, tb); // the original error stands
        return NULL;
    }
    PyErr_SetObject((PyObject *)Py_TYPE(removed), removed);
    Py_DECREF(removed);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return NULL;
}

PyDoc_STRVAR(
    removed_error_doc,
    "_removed_error(exc, id, /)\n--\n\n"
    "The error a handle method raises for exc, an error of a call on the\n"
    "handle's id: IdentifierRemovedError if exc is EINVAL and the id names\n"
    "no object any more, else exc itself (sysvipc's handles use it).");

static PyObject *
sysvipc_removed_error(PyObject *module, PyObject *const *args,
                      Py_ssize_t nargs)
{
    int id;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError,
                     "_removed_error() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    if (!PyExceptionInstance_Check(args[0])) {
        PyErr_Format(PyExc_TypeError,
                     "_removed_error() takes an exception, not %.100s",
                     Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    if (to_int(args[1], "id", INT_MIN, INT_MAX, &id) < 0) {
        return NULL;
    }
    return removed_error(get_state(module), args[0], id);
}

static PyObject *
closed_error(const char *kind)
{
    PyErr_Format(PyExc_ValueError, "operation on a closed %s", kind);
    return NULL;
}

/* An optional bool argument (any object, by truth value). */
static int
opt_bool(PyObject *obj, int dflt)
{
    return obj == NULL ? dflt : PyObject_IsTrue(obj);
}

PyDoc_STRVAR(
    mq_send_doc,
    "send($self, /, data, type=1, *, block=True, timeout=None)\n--\n\n"
    "Send data (bytes, bytearray, memoryview, a C-contiguous numpy array:\n"
    "any bytes-like object) as a message of type (>= 1).\n\n"
    "When the queue is full: wait (block=True), for at most timeout\n"
    "seconds (then TimeoutError), or raise BlockingIOError at once\n"
    "(block=False).  A message over the kernel's msgmax, or one that can\n"
    "never fit in the queue's msg_qbytes, is a ValueError.");

static PyObject *
mq_send(HandleCore *self, PyObject *const *args, Py_ssize_t nargs,
        PyObject *kwnames)
{
    static const char *const names[] = {"data", "type", "block", "timeout"};
    PyObject *a[4];
    long long mtype = 1;
    int block, has_deadline;
    int64_t deadline;
    if (parse_args("send", args, nargs, kwnames, names, 4, 2, 1, a) < 0) {
        return NULL;
    }
    if (self->closed) {
        return closed_error("message queue");
    }
    if ((a[1] != NULL && to_llong(a[1], "type", 1, LONG_MAX, &mtype) < 0) ||
        (block = opt_bool(a[2], 1)) < 0 ||
        parse_timeout(a[3], &has_deadline, &deadline) < 0) {
        return NULL;
    }
    if (PyBytes_CheckExact(a[0]) && PyBytes_GET_SIZE(a[0]) <= STACK_MSG_SIZE &&
        fast_hint_try(&self->send_hint)) {
        // The everyday call: bytes that fit on the stack, sent without
        // waiting, with the GIL held and no buffer export (bytes cannot
        // change).  A full queue or an error takes the general path.
        Py_ssize_t len = PyBytes_GET_SIZE(a[0]);
        stack_msgbuf msg;
        msg.mtype = (long)mtype;
        memcpy(msg.mtext, PyBytes_AS_STRING(a[0]), (size_t)len);
        if (msgsnd(self->id, &msg, (size_t)len, IPC_NOWAIT) == 0) {
            Py_RETURN_NONE;
        }
        if (errno == EAGAIN) {
            // The general path tries again before it waits.  A queue found
            // full tends to stay so (a producer ahead of its consumer): the
            // next sends go straight to the general path, sparing them that
            // second copy and syscall.
            self->send_hint.skip = 63;
        }
    }
    module_state *st = self->st;
    int msqid = self->id;
    return removed_if_invalid(st,
                              msgsnd_impl(st, msqid, a[0], (long)mtype,
                                          block ? 0 : IPC_NOWAIT, has_deadline,
                                          deadline),
                              msqid);
}

static int
receive_method_flags(PyObject *block, PyObject *truncate,
                     PyObject *except_type, int *flags)
{
    int b = opt_bool(block, 1), t, e;
    if (b < 0 || (t = opt_bool(truncate, 0)) < 0 ||
        (e = opt_bool(except_type, 0)) < 0) {
        return -1;
    }
    *flags =
        (b ? 0 : IPC_NOWAIT) | (t ? MSG_NOERROR : 0) | (e ? MSG_EXCEPT : 0);
    return 0;
}

PyDoc_STRVAR(
    mq_receive_doc,
    "receive($self, /, type=0, *, block=True, timeout=None, max_size=None,\n"
    "        truncate=False, except_type=False)\n--\n\n"
    "Receive a message; return a Message (data, type).\n\n"
    "type 0: the first message; > 0: the first of that type; < 0: the\n"
    "first of the lowest type <= abs(type).  except_type=True: the first\n"
    "whose type is not type (MSG_EXCEPT).\n\n"
    "max_size (default: any size the kernel allows, without allocating\n"
    "that much up front) bounds the message; a longer one raises\n"
    "OSError(E2BIG) and stays queued, unless truncate=True (MSG_NOERROR)\n"
    "cuts it to max_size.\n\n"
    "Without a message: wait (block=True), for at most timeout seconds\n"
    "(TimeoutError), or raise BlockingIOError (block=False).");

/*
 * The module's receive reserve (see receive_small) is taken for the whole
 * call, so that no other thread can use it meanwhile, and put back after.
 * The GIL makes plain loads and stores enough; without one they are atomic.
 */
static inline PyObject *
reserve_take(module_state *st)
{
#ifdef Py_GIL_DISABLED
    return __atomic_exchange_n(&st->receive_reserve, NULL, __ATOMIC_ACQ_REL);
#else
    PyObject *reserve = st->receive_reserve;
    st->receive_reserve = NULL;
    return reserve;
#endif
}

static inline void
reserve_put_back(module_state *st, PyObject *reserve)
{
#ifdef Py_GIL_DISABLED
    PyObject *none = NULL;
    if (__atomic_compare_exchange_n(&st->receive_reserve, &none, reserve, 0,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        return;
    }
#else
    if (st->receive_reserve == NULL) {
        st->receive_reserve = reserve;
        return;
    }
#endif
    Py_DECREF(reserve); // another thread put one back meanwhile
}

/*
 * receive() without a timeout when the message fits on the stack: the
 * everyday call, in one function.  msgrcv cannot be undone, so everything
 * the result is made of exists before it runs: the Message, its type when
 * the request fixes it (or a cached small int), and the module's reserve,
 * a bytes object of STACK_MSG_SIZE kept between calls that stands in for
 * the exact-size bytes if those cannot be allocated.  Returns 1 with the
 * Message in *out, -1 with an exception set, or 0 when the message is
 * longer than the stack buffer and max_size allows it: it is still queued,
 * for the general path.
 */
static int
receive_small(module_state *st, HandleCore *self, size_t max_size, long mtype,
              int flags, PyObject **out)
{
    size_t cap = max_size < STACK_MSG_SIZE ? max_size : STACK_MSG_SIZE;
    int callflags = flags;
    if (max_size > STACK_MSG_SIZE) {
        callflags &= ~MSG_NOERROR; // a longer message is not cut to fit here
    }
    PyObject *message = message_alloc(st);
    if (message == NULL) {
        return -1;
    }
    PyObject *type = NULL;
    if (!(flags & MSG_EXCEPT) && mtype != 0 && mtype >= -256) {
        // The message's type will be mtype, or for mtype < 0 at most
        // -mtype: a cached small int then, made after msgrcv at no risk.
        type = mtype > 0 ? PyLong_FromLong(mtype) : NULL;
        if (mtype > 0 && type == NULL) {
            Py_DECREF(message);
            return -1;
        }
    }
    PyObject *reserve = reserve_take(st);
    if (reserve == NULL) {
        reserve = PyBytes_FromStringAndSize(NULL, STACK_MSG_SIZE);
        if (reserve == NULL) {
            Py_XDECREF(type);
            Py_DECREF(message);
            return -1;
        }
    }

    stack_msgbuf buf;
    int msqid = self->id;
    int nowait = (flags & IPC_NOWAIT) != 0;
    // As in receive_loop: no GIL round trip for a call that need not wait.
    int fast = nowait || fast_hint_try(&self->hint);
    int attempts = 0, e = 0, result = -1;
    ssize_t n;
    for (;;) {
        attempts++;
        if (fast) {
            fast = 0;
            n = msgrcv(msqid, &buf, cap, mtype, callflags | IPC_NOWAIT);
            e = errno;
            if (!nowait) {
                fast_hint_result(&self->hint, n < 0 && e == ENOMSG);
                if (n < 0 && e == ENOMSG) {
                    continue; // now wait for it
                }
            }
        }
        else {
            Py_BEGIN_ALLOW_THREADS
            n = msgrcv(msqid, &buf, cap, mtype, callflags);
            e = errno;
            Py_END_ALLOW_THREADS
        }
        if (n >= 0 || e != EINTR) {
            break;
        }
        if (PyErr_CheckSignals() < 0) {
            goto done; // nothing was taken
        }
    }
    if (n < 0) {
        if (e == E2BIG && max_size > STACK_MSG_SIZE) {
            result = 0;
        }
        else {
            // EINVAL on a retry: the id was valid at the first try, so the
            // queue was removed in between.
            raise_errno(st, (e == EINVAL && attempts > 1) ? EIDRM : e,
                        "msgrcv", msqid);
        }
        goto done;
    }

    // The message is ours: from here on nothing may fail.
    PyObject *data = PyBytes_FromStringAndSize(buf.mtext, n);
    if (data == NULL) {
        PyErr_Clear();
        data = bytes_from_spare(reserve, buf.mtext, n); // the reserve shrunk
        reserve = NULL;
    }
    if (type == NULL) {
        // Types up to 256 are cached ints, which need no allocation; for
        // others the reserve, if still ours, makes room for a second try.
        type = long_after_receive(buf.mtype, &reserve);
        if (type == NULL) {
            // A type above 256 that no request fixed (type 0, type below
            // -256 or except_type), and not even an int's 32 bytes to be
            // had: the message goes back, at the end of the queue.
            Py_DECREF(data);
            int back = msgsnd(msqid, &buf, (size_t)n, IPC_NOWAIT);
            PyErr_Format(PyExc_MemoryError,
                         "out of memory receiving a message of type %ld; "
                         "it %s",
                         buf.mtype,
                         back == 0 ? "was sent back to the end of the queue"
                                   : "could not be sent back, and is lost");
            goto done;
        }
    }
    PyTuple_SET_ITEM(message, 0, data);
    PyTuple_SET_ITEM(message, 1, type);
    *out = message;
    message = type = NULL;
    result = 1;
done:
    if (reserve != NULL) {
        reserve_put_back(st, reserve);
    }
    Py_XDECREF(type);
    Py_XDECREF(message);
    return result;
}

static PyObject *
mq_receive(HandleCore *self, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames)
{
    static const char *const names[] = {"type",     "block",    "timeout",
                                        "max_size", "truncate", "except_type"};
    PyObject *a[6];
    long long mtype = 0;
    unsigned long long max_size = ANY_SIZE;
    int flags, has_deadline;
    int64_t deadline;
    if (parse_args("receive", args, nargs, kwnames, names, 6, 1, 0, a) < 0) {
        return NULL;
    }
    if (self->closed) {
        return closed_error("message queue");
    }
    if ((a[0] != NULL &&
         to_llong(a[0], "type", LONG_MIN, LONG_MAX, &mtype) < 0) ||
        receive_method_flags(a[1], a[4], a[5], &flags) < 0 ||
        parse_timeout(a[2], &has_deadline, &deadline) < 0 ||
        (a[3] != NULL && a[3] != Py_None &&
         to_ullong(a[3], "max_size", PY_SSIZE_T_MAX - sizeof(long),
                   &max_size) < 0)) {
        return NULL;
    }
    module_state *st = self->st;
    int msqid = self->id;
    if (!has_deadline) {
        PyObject *message = NULL;
        int rc = receive_small(st, self, (size_t)max_size, (long)mtype, flags,
                               &message);
        if (rc != 0) {
            return removed_if_invalid(st, message, msqid);
        }
    }
    return removed_if_invalid(st,
                              msgrcv_impl(st, msqid, (size_t)max_size,
                                          (long)mtype, &self->hint, flags,
                                          has_deadline, deadline),
                              msqid);
}

PyDoc_STRVAR(
    mq_receive_into_doc,
    "receive_into($self, /, buffer, type=0, *, block=True, timeout=None,\n"
    "             truncate=False, except_type=False)\n--\n\n"
    "Receive a message into a writable buffer; return (nbytes, type).\n"
    "The buffer's length is the largest message accepted (see receive()\n"
    "for the other arguments).");

static PyObject *
mq_receive_into(HandleCore *self, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    static const char *const names[] = {"buffer",  "type",     "block",
                                        "timeout", "truncate", "except_type"};
    PyObject *a[6];
    long long mtype = 0;
    int flags, has_deadline;
    int64_t deadline;
    if (parse_args("receive_into", args, nargs, kwnames, names, 6, 2, 1, a) <
        0) {
        return NULL;
    }
    if (self->closed) {
        return closed_error("message queue");
    }
    if ((a[1] != NULL &&
         to_llong(a[1], "type", LONG_MIN, LONG_MAX, &mtype) < 0) ||
        receive_method_flags(a[2], a[4], a[5], &flags) < 0 ||
        parse_timeout(a[3], &has_deadline, &deadline) < 0) {
        return NULL;
    }
    module_state *st = get_state_by_type(Py_TYPE(self));
    if (st == NULL) {
        return NULL;
    }
    int msqid = self->id;
    return removed_if_invalid(
        st,
        msgrcv_into_impl(st, msqid, a[0], (long)mtype, &self->hint, flags,
                         has_deadline, deadline, "receive_into"),
        msqid);
}

static PyMethodDef mq_methods[] = {
    {"send", (PyCFunction)(void (*)(void))mq_send,
     METH_FASTCALL | METH_KEYWORDS, mq_send_doc},
    {"receive", (PyCFunction)(void (*)(void))mq_receive,
     METH_FASTCALL | METH_KEYWORDS, mq_receive_doc},
    {"receive_into", (PyCFunction)(void (*)(void))mq_receive_into,
     METH_FASTCALL | METH_KEYWORDS, mq_receive_into_doc},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot mq_slots[] = {
    {Py_tp_new, handle_core_new},
    {Py_tp_dealloc, handle_core_dealloc},
    {Py_tp_members, handle_core_members},
    {Py_tp_methods, mq_methods},
    {Py_tp_doc, (void *)"Base of sysvipc.MessageQueue: its hot paths in C."},
    {0, NULL},
};

static PyType_Spec mq_spec = {
    .name = "sysvipc._sysvipc.MessageQueueBase",
    .basicsize = sizeof(HandleCore),
    .flags =
        Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = mq_slots,
};

static PyType_Slot semset_slots[] = {
    {Py_tp_new, handle_core_new},
    {Py_tp_dealloc, handle_core_dealloc},
    {Py_tp_members, handle_core_members},
    {Py_tp_doc, (void *)"Base of sysvipc.SemaphoreSet: the id and closed "
                        "flag that Semaphore's C methods read."},
    {0, NULL},
};

static PyType_Spec semset_spec = {
    .name = "sysvipc._sysvipc.SemaphoreSetBase",
    .basicsize = sizeof(HandleCore),
    .flags =
        Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = semset_slots,
};

/* One semaphore of a set: the base of sysvipc.Semaphore.  Both fields are
 * set once (by Semaphore.__init__) and never change or go while the object
 * lives: the C methods rely on them. */
typedef struct {
    PyObject_HEAD
    PyObject *set; // a SemaphoreSetBase, or NULL until set
    int index;     // 0..USHRT_MAX, or -1 until set
} SemaphoreCore;

static PyObject *
sem_core_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    SemaphoreCore *self = (SemaphoreCore *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->index = -1;
    }
    return (PyObject *)self;
}

static int
sem_core_traverse(SemaphoreCore *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->set);
    return 0;
}

static int
sem_core_clear(SemaphoreCore *self)
{
    Py_CLEAR(self->set);
    return 0;
}

static void
sem_core_dealloc(SemaphoreCore *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    sem_core_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *
sem_core_get_set(SemaphoreCore *self, void *Py_UNUSED(c))
{
    if (self->set == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_set");
        return NULL;
    }
    return Py_NewRef(self->set);
}

static int
sem_core_set_set(SemaphoreCore *self, PyObject *value, void *Py_UNUSED(c))
{
    if (value == NULL || self->set != NULL) {
        PyErr_SetString(PyExc_AttributeError,
                        "_set is set once and never deleted");
        return -1;
    }
    module_state *st = get_state_by_type(Py_TYPE(self));
    if (st == NULL) {
        return -1;
    }
    if (!PyObject_TypeCheck(value, st->SemaphoreSetBaseType)) {
        PyErr_Format(PyExc_TypeError,
                     "_set must be a SemaphoreSet, not %.100s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    self->set = Py_NewRef(value);
    return 0;
}

static PyObject *
sem_core_get_index(SemaphoreCore *self, void *Py_UNUSED(c))
{
    return PyLong_FromLong(self->index);
}

static int
sem_core_set_index(SemaphoreCore *self, PyObject *value, void *Py_UNUSED(c))
{
    int index;
    if (value == NULL || self->index >= 0) {
        PyErr_SetString(PyExc_AttributeError,
                        "_index is set once and never deleted");
        return -1;
    }
    if (to_int(value, "_index", 0, USHRT_MAX, &index) < 0) {
        return -1;
    }
    if (self->index >= 0) { // set by __index__ meanwhile
        PyErr_SetString(PyExc_AttributeError, "_index is set once");
        return -1;
    }
    self->index = index;
    return 0;
}

static PyGetSetDef sem_core_getset[] = {
    {"_set", (getter)sem_core_get_set, (setter)sem_core_set_set,
     "The SemaphoreSet (set once).", NULL},
    {"_index", (getter)sem_core_get_index, (setter)sem_core_set_index,
     "The index in the set (set once).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/*
 * The open set (a new reference) and its id, or NULL with an exception set.
 * Call it after the last argument conversion: those can run Python code,
 * which may close the set.
 */
static PyObject *
sem_core_open_set(SemaphoreCore *self, module_state *st, int *semid)
{
    PyObject *set = self->set;
    if (set == NULL || self->index < 0 ||
        !PyObject_TypeCheck(set, st->SemaphoreSetBaseType)) {
        PyErr_SetString(PyExc_TypeError, "a Semaphore needs its set");
        return NULL;
    }
    if (((HandleCore *)set)->closed) {
        // The set's own message (SemaphoreSet._raise_closed) says more.
        PyObject *r = PyObject_CallMethod(set, "_raise_closed", NULL);
        Py_XDECREF(r);
        if (!PyErr_Occurred()) {
            closed_error("semaphore set");
        }
        return NULL;
    }
    *semid = ((HandleCore *)set)->id;
    return Py_NewRef(set);
}

/* One operation on this semaphore, with SemaphoreSet's error meanings. */
static int
sem_core_op(SemaphoreCore *self, module_state *st, PyObject *set, int semid,
            int delta, int flags, int has_deadline, int64_t deadline)
{
    struct sembuf op = {(unsigned short)self->index, (short)delta,
                        (short)flags};
    int err;
    fast_hint *hint = &((HandleCore *)set)->hint;
    if (semop_core(semid, &op, 1, has_deadline, deadline, hint, &err) == 0) {
        return 0;
    }
    if (err == ERANGE) {
        PyErr_Format(PyExc_ValueError,
                     "the operation would take a value of semaphore set %d "
                     "above SEMVMX (%d), or its undo adjustment beyond "
                     "-%d..%d",
                     semid, SEMVMX, SEMVMX, SEMVMX);
    }
    else if (err != 0) {
        raise_errno(st, err, has_deadline ? "semtimedop" : "semop", semid);
        removed_if_invalid(st, NULL, semid); // the handles' one rule
    }
    return -1;
}

static int
sem_count_arg(PyObject *obj, int *n)
{
    if (obj == NULL) {
        *n = 1;
        return 0;
    }
    return to_int(obj, "n", 1, SHRT_MAX, n);
}

PyDoc_STRVAR(
    sem_acquire_doc,
    "acquire($self, /, n=1, *, block=True, timeout=None, undo=False)\n--\n\n"
    "Subtract n (1..32767), waiting while the value is below n.\n\n"
    "Returns True if it subtracted, False if it did not, as\n"
    "threading.Semaphore.acquire does: False when the timeout (seconds)\n"
    "expired, or with block=False when it would have had to wait; the value\n"
    "is then unchanged.  Removing the set wakes the wait with\n"
    "sysvipc.IdentifierRemovedError.  undo=True adds SEM_UNDO: the kernel\n"
    "reverses the change when this process exits.");

static PyObject *
sem_acquire(SemaphoreCore *self, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    static const char *const names[] = {"n", "block", "timeout", "undo"};
    PyObject *a[4];
    int n, block, undo, has_deadline;
    int64_t deadline;
    module_state *st = get_state_by_type(Py_TYPE(self));
    if (st == NULL ||
        parse_args("acquire", args, nargs, kwnames, names, 4, 1, 0, a) < 0) {
        return NULL;
    }
    // Arguments first: converting them can run Python code.
    if (sem_count_arg(a[0], &n) < 0 || (block = opt_bool(a[1], 1)) < 0 ||
        (undo = opt_bool(a[3], 0)) < 0 ||
        parse_timeout(a[2], &has_deadline, &deadline) < 0) {
        return NULL;
    }
    if (!block && a[2] != NULL && a[2] != Py_None) {
        PyErr_SetString(PyExc_ValueError,
                        "a timeout makes no sense with block=False");
        return NULL;
    }
    int semid;
    PyObject *set = sem_core_open_set(self, st, &semid);
    if (set == NULL) {
        return NULL;
    }
    int flags = (block ? 0 : IPC_NOWAIT) | (undo ? SEM_UNDO : 0);
    int rc =
        sem_core_op(self, st, set, semid, -n, flags, has_deadline, deadline);
    Py_DECREF(set);
    if (rc < 0) {
        // Like threading.Semaphore.acquire: not acquired is False, not an
        // error (EAGAIN with block=False, or the timeout expired).
        // OSError(EAGAIN, ...) becomes BlockingIOError once normalised.
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (value != NULL &&
            (PyErr_GivenExceptionMatches(value, PyExc_TimeoutError) ||
             PyErr_GivenExceptionMatches(value, PyExc_BlockingIOError))) {
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            Py_RETURN_FALSE;
        }
        PyErr_Restore(type, value, tb);
        return NULL;
    }
    Py_RETURN_TRUE;
}

PyDoc_STRVAR(sem_release_doc,
             "release($self, /, n=1, *, undo=False)\n--\n\n"
             "Add n (1..32767), waking waiters.  Never blocks.\n\n"
             "A value that would pass SEMVMX (32767) raises ValueError and\n"
             "changes nothing.  undo=True pairs with acquire(undo=True) (the\n"
             "two adjustments cancel out).");

static PyObject *
sem_release(SemaphoreCore *self, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    static const char *const names[] = {"n", "undo"};
    PyObject *a[2];
    int n, undo;
    module_state *st = get_state_by_type(Py_TYPE(self));
    if (st == NULL ||
        parse_args("release", args, nargs, kwnames, names, 2, 1, 0, a) < 0) {
        return NULL;
    }
    if (sem_count_arg(a[0], &n) < 0 || (undo = opt_bool(a[1], 0)) < 0) {
        return NULL;
    }
    int semid;
    PyObject *set = sem_core_open_set(self, st, &semid);
    if (set == NULL) {
        return NULL;
    }
    int rc = sem_core_op(self, st, set, semid, n, undo ? SEM_UNDO : 0, 0, 0);
    Py_DECREF(set);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* One SEM_UNDO operation of delta, for the with-lock. */
static int
sem_lock_op(SemaphoreCore *self, int delta)
{
    module_state *st = get_state_by_type(Py_TYPE(self));
    int semid;
    PyObject *set = st ? sem_core_open_set(self, st, &semid) : NULL;
    if (set == NULL) {
        return -1;
    }
    int rc = sem_core_op(self, st, set, semid, delta, SEM_UNDO, 0, 0);
    Py_DECREF(set);
    return rc;
}

static PyObject *
sem_enter(SemaphoreCore *self, PyObject *Py_UNUSED(ignored))
{
    if (sem_lock_op(self, -1) < 0) {
        return NULL;
    }
    return Py_NewRef(self);
}

static PyObject *
sem_exit(SemaphoreCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (sem_lock_op(self, 1) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef sem_core_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))sem_acquire,
     METH_FASTCALL | METH_KEYWORDS, sem_acquire_doc},
    {"release", (PyCFunction)(void (*)(void))sem_release,
     METH_FASTCALL | METH_KEYWORDS, sem_release_doc},
    {"__enter__", (PyCFunction)sem_enter, METH_NOARGS,
     "Acquire 1 with SEM_UNDO: a lock the kernel releases if this process "
     "dies."},
    {"__exit__", (PyCFunction)(void (*)(void))sem_exit, METH_FASTCALL,
     "Release 1 with SEM_UNDO."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot sem_core_slots[] = {
    {Py_tp_new, sem_core_new},
    {Py_tp_dealloc, sem_core_dealloc},
    {Py_tp_traverse, sem_core_traverse},
    {Py_tp_clear, sem_core_clear},
    {Py_tp_getset, sem_core_getset},
    {Py_tp_methods, sem_core_methods},
    {Py_tp_doc, (void *)"Base of sysvipc.Semaphore: acquire, release and "
                        "the with-lock in C."},
    {0, NULL},
};

static PyType_Spec sem_core_spec = {
    .name = "sysvipc._sysvipc.SemaphoreBase",
    .basicsize = sizeof(SemaphoreCore),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = sem_core_slots,
};

/* ------------------------------------------------------------------------ */
/* Shared memory: the Attachment type                                        */
/* ------------------------------------------------------------------------ */

/*
 * An Attachment owns one shmat() mapping.  It exports the mapping through
 * the buffer protocol and counts exports; every view holds a reference to
 * it, so the mapping is detached only in dealloc (when no view can reach it)
 * or by detach(), which refuses while views exist.  Like mmap: the address
 * is cleared before shmdt runs, and a closed attachment exports nothing.
 */
typedef struct {
    PyObject_HEAD
    char *addr; // NULL once detached
    Py_ssize_t size;
    Py_ssize_t exports; // buffer views alive
    // Large copies in progress (GIL released), counted in the process that
    // makes them: a child forked meanwhile has none (see copy_begin).
    Py_ssize_t copies;
    unsigned long copies_generation;
    int shmid;
    int readonly;
    // After detach(): the anonymous mapping that took the segment's place,
    // unmapped in dealloc (see attachment_detach).
    void *placeholder;
    size_t placeholder_size;
    PyObject *weakreflist;
} AttachmentObject;

/*
 * A copy made with the GIL released keeps the mapping from being detached
 * under it.  The count is per process: the thread making the copy does not
 * exist in a child forked meanwhile, so there the copy never ends and must
 * not count (fork_generation changes in every forked child).
 */
static void
copy_begin(AttachmentObject *self)
{
    if (self->copies_generation != fork_generation) {
        self->copies = 0; // the parent's copies, inherited by fork
        self->copies_generation = fork_generation;
    }
    self->copies++;
}

static void
copy_end(AttachmentObject *self)
{
    if (self->copies_generation == fork_generation) {
        self->copies--;
    }
}

static Py_ssize_t
copies_in_flight(AttachmentObject *self)
{
    return self->copies_generation == fork_generation ? self->copies : 0;
}

static int
attachment_check_open(AttachmentObject *self)
{
    if (self->addr == NULL) {
        PyErr_SetString(PyExc_ValueError,
                        "operation on a detached shared memory attachment");
        return -1;
    }
    return 0;
}

static int
attachment_getbuffer(AttachmentObject *self, Py_buffer *view, int flags)
{
    if (attachment_check_open(self) < 0) {
        view->obj = NULL;
        return -1;
    }
    if ((flags & PyBUF_WRITABLE) && self->readonly) {
        view->obj = NULL;
        PyErr_SetString(PyExc_BufferError,
                        "the segment is attached read-only");
        return -1;
    }
    if (PyBuffer_FillInfo(view, (PyObject *)self, self->addr, self->size,
                          self->readonly, flags) < 0) {
        return -1;
    }
    self->exports++;
    return 0;
}

static void
attachment_releasebuffer(AttachmentObject *self, Py_buffer *view)
{
    (void)view;
    self->exports--;
}

/*
 * Detach while Python objects may still hold the address.  numpy's
 * ndarray(buffer=...) keeps a reference to the exporter but no export, so
 * "no exports" does not mean "nobody will touch this memory".  Instead of
 * shmdt, an anonymous private mapping replaces the segment in place
 * (MAP_FIXED unmaps the segment atomically, which is all shmdt does, and
 * the kernel drops the attachment: shm_nattch falls).  A stale pointer then
 * reads zeros and writes private pages, and never faults.  The placeholder
 * goes in dealloc, when no reference is left.
 */
static int
attachment_detach_now(AttachmentObject *self, int release_gil, int *err)
{
    char *addr = self->addr;
    size_t len = (size_t)self->size;
    int prot = self->readonly ? PROT_READ : (PROT_READ | PROT_WRITE);
    void *p;
    self->addr = NULL;
    self->size = 0;
    if (len == 0) {
        *err = 0;
        return shmdt(addr) < 0 ? (*err = errno, -1) : 0;
    }
    // The mapping spans whole pages, huge pages for a SHM_HUGETLB segment,
    // whose size is not recorded anywhere: try page, 2 MiB and 1 GiB
    // rounding in turn.  A rounding short of the real extent would split a
    // huge page, which the kernel refuses (EINVAL) without changing
    // anything, so the first one that succeeds is exact.
    static const size_t units[] = {0, (size_t)2 << 20, (size_t)1 << 30};
    size_t mapped = len;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        size_t unit = units[i] ? units[i] : (size_t)sysconf(_SC_PAGESIZE);
        mapped = (len + unit - 1) / unit * unit;
        PyThreadState *ts = release_gil ? PyEval_SaveThread() : NULL;
        p = mmap(addr, mapped, prot,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1,
                 0);
        *err = errno;
        if (ts != NULL) {
            PyEval_RestoreThread(ts);
        }
        if (p != MAP_FAILED || *err != EINVAL) {
            break;
        }
    }
    if (p == MAP_FAILED) {
        // The segment is still mapped: keep the attachment usable.
        self->addr = addr;
        self->size = (Py_ssize_t)len;
        return -1;
    }
    self->placeholder = p;
    self->placeholder_size = mapped;
    return 0;
}

static void
attachment_dealloc(AttachmentObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    // Every view holds a reference, and a closed SharedMemory handle that
    // exported keeps its own (see handle_close): nothing reaches the
    // memory any more, so shmdt is safe.
    if (self->addr != NULL) {
        char *addr = self->addr;
        self->addr = NULL;
        shmdt(addr);
    }
    if (self->placeholder != NULL) {
        munmap(self->placeholder, self->placeholder_size);
        self->placeholder = NULL;
    }
    tp->tp_free(self);
    Py_DECREF(tp);
}

static int
attachment_traverse(AttachmentObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return 0;
}

PyDoc_STRVAR(
    attachment_detach_doc,
    "detach($self, /)\n--\n\n"
    "Detach the mapping now.  Raises BufferError while buffer views of it\n"
    "exist; does nothing if already detached.  Objects that kept only a\n"
    "reference (numpy's ndarray(buffer=...)) see zero-filled private memory\n"
    "in its place afterwards, never unmapped memory.");

static PyObject *
attachment_detach(AttachmentObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->addr == NULL) {
        Py_RETURN_NONE;
    }
    if (self->exports > 0) {
        PyErr_Format(PyExc_BufferError,
                     "cannot detach: %zd exported view(s) of the segment "
                     "still exist",
                     self->exports);
        return NULL;
    }
    if (copies_in_flight(self) > 0) {
        PyErr_SetString(PyExc_BufferError,
                        "cannot detach: another thread is copying to or "
                        "from the segment");
        return NULL;
    }
    int err;
    if (attachment_detach_now(self, 1, &err) < 0) {
        module_state *st = get_state_by_type(Py_TYPE(self));
        return st ? raise_errno(st, err, "shmdt", self->shmid) : NULL;
    }
    Py_RETURN_NONE;
}

/*
 * Convert offset and size arguments (size -1: to the end).  This can run
 * Python code (__index__), which may detach the mapping: read nothing of
 * the mapping here, validate with attachment_bounds after the last such
 * call.
 */
static int
attachment_range_args(PyObject *offset_obj, PyObject *size_obj, long long *off,
                      long long *sz)
{
    *off = 0;
    *sz = -1;
    if (offset_obj != NULL &&
        to_llong(offset_obj, "offset", 0, PY_SSIZE_T_MAX, off) < 0) {
        return -1;
    }
    if (size_obj != NULL && size_obj != Py_None &&
        to_llong(size_obj, "size", 0, PY_SSIZE_T_MAX, sz) < 0) {
        return -1;
    }
    return 0;
}

/*
 * Check that the mapping is attached and [off, off + sz) lies inside it
 * (sz -1: to the end).  Runs no Python code: call it after everything that
 * can, right before using self->addr.
 */
static int
attachment_bounds(AttachmentObject *self, long long off, long long sz,
                  Py_ssize_t *offset, Py_ssize_t *size)
{
    if (attachment_check_open(self) < 0) {
        return -1;
    }
    if (off > self->size) {
        PyErr_Format(PyExc_ValueError,
                     "offset %lld is past the end of the %zd-byte segment",
                     off, self->size);
        return -1;
    }
    if (sz < 0) {
        sz = self->size - off;
    }
    else if (sz > self->size - off) {
        PyErr_Format(PyExc_ValueError,
                     "%lld bytes at offset %lld exceed the %zd-byte segment",
                     sz, off, self->size);
        return -1;
    }
    *offset = (Py_ssize_t)off;
    *size = (Py_ssize_t)sz;
    return 0;
}

/* memcpy, with the GIL released for large copies. */
static void
attachment_copy(AttachmentObject *self, void *dst, const void *src, size_t n)
{
    if (n >= GIL_RELEASE_COPY_SIZE) {
        copy_begin(self);
        Py_BEGIN_ALLOW_THREADS
        memcpy(dst, src, n);
        Py_END_ALLOW_THREADS
        copy_end(self);
    }
    else if (n > 0) {
        memcpy(dst, src, n);
    }
}

PyDoc_STRVAR(
    attachment_read_doc,
    "read($self, /, size=None, offset=0)\n--\n\n"
    "Return a copy of size bytes (to the end by default) from offset.");

static PyObject *
attachment_read(AttachmentObject *self, PyObject *const *args,
                Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"size", "offset"};
    PyObject *a[2];
    long long off, sz;
    Py_ssize_t offset, size;
    if (parse_args("read", args, nargs, kwnames, names, 2, 2, 0, a) < 0 ||
        attachment_range_args(a[1], a[0], &off, &sz) < 0 ||
        attachment_bounds(self, off, sz, &offset, &size) < 0) {
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) {
        return NULL;
    }
    // Allocating runs no Python code today; check again all the same.
    if (attachment_bounds(self, off, size, &offset, &size) < 0) {
        Py_DECREF(result);
        return NULL;
    }
    attachment_copy(self, PyBytes_AS_STRING(result), self->addr + offset,
                    (size_t)size);
    return result;
}

PyDoc_STRVAR(
    attachment_read_into_doc,
    "read_into($self, /, buffer, offset=0)\n--\n\n"
    "Fill a writable buffer from offset; return the number of bytes copied.");

static PyObject *
attachment_read_into(AttachmentObject *self, PyObject *const *args,
                     Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"buffer", "offset"};
    PyObject *a[2];
    long long off, sz;
    Py_ssize_t offset, avail;
    if (parse_args("read_into", args, nargs, kwnames, names, 2, 2, 1, a) < 0 ||
        attachment_range_args(a[1], NULL, &off, &sz) < 0) {
        return NULL;
    }
    // Getting the buffer can run Python code (__buffer__, PEP 688) that
    // detaches this mapping: validate only after it.
    Py_buffer view;
    if (get_writable_buffer(a[0], &view, "read_into") < 0) {
        return NULL;
    }
    if (attachment_bounds(self, off, sz, &offset, &avail) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    if (view.len > avail) {
        PyErr_Format(PyExc_ValueError,
                     "%zd bytes at offset %zd exceed the %zd-byte segment",
                     view.len, offset, self->size);
        PyBuffer_Release(&view);
        return NULL;
    }
    attachment_copy(self, view.buf, self->addr + offset, (size_t)view.len);
    Py_ssize_t n = view.len;
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(n);
}

PyDoc_STRVAR(
    attachment_write_doc,
    "write($self, /, data, offset=0)\n--\n\n"
    "Copy a bytes-like object into the segment at offset; return its length.");

static PyObject *
attachment_write(AttachmentObject *self, PyObject *const *args,
                 Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"data", "offset"};
    PyObject *a[2];
    long long off, sz;
    Py_ssize_t offset, avail;
    if (parse_args("write", args, nargs, kwnames, names, 2, 2, 1, a) < 0 ||
        attachment_range_args(a[1], NULL, &off, &sz) < 0) {
        return NULL;
    }
    if (self->readonly) {
        PyErr_SetString(PyExc_PermissionError,
                        "the segment is attached read-only");
        return NULL;
    }
    // As in read_into: the buffer's __buffer__ may detach this mapping.
    Py_buffer view;
    if (PyObject_GetBuffer(a[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (attachment_bounds(self, off, sz, &offset, &avail) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    if (view.len > avail) {
        PyErr_Format(PyExc_ValueError,
                     "%zd bytes at offset %zd exceed the %zd-byte segment",
                     view.len, offset, self->size);
        PyBuffer_Release(&view);
        return NULL;
    }
    // memmove semantics: the source may be a view of this very segment.
    if (view.len >= GIL_RELEASE_COPY_SIZE) {
        char *dst = self->addr + offset;
        const void *src = view.buf;
        size_t n = (size_t)view.len;
        copy_begin(self);
        Py_BEGIN_ALLOW_THREADS
        memmove(dst, src, n);
        Py_END_ALLOW_THREADS
        copy_end(self);
    }
    else if (view.len > 0) {
        memmove(self->addr + offset, view.buf, (size_t)view.len);
    }
    Py_ssize_t n = view.len;
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(n);
}

static PyObject *
attachment_repr(AttachmentObject *self)
{
    if (self->addr == NULL) {
        return PyUnicode_FromFormat("<%s shmid=%d detached>",
                                    Py_TYPE(self)->tp_name, self->shmid);
    }
    return PyUnicode_FromFormat("<%s shmid=%d size=%zd address=%p%s>",
                                Py_TYPE(self)->tp_name, self->shmid,
                                self->size, self->addr,
                                self->readonly ? " readonly" : "");
}

static PyObject *
attachment_get_address(AttachmentObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromVoidPtr(self->addr);
}

static PyObject *
attachment_get_size(AttachmentObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromSsize_t(self->size);
}

static PyObject *
attachment_get_detached(AttachmentObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->addr == NULL);
}

static PyObject *
attachment_get_readonly(AttachmentObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->readonly);
}

static PyObject *
attachment_get_shmid(AttachmentObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromLong(self->shmid);
}

static PyObject *
attachment_get_exports(AttachmentObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromSsize_t(self->exports);
}

static PyMethodDef attachment_methods[] = {
    {"detach", (PyCFunction)attachment_detach, METH_NOARGS,
     attachment_detach_doc},
    {"read", (PyCFunction)(void (*)(void))attachment_read,
     METH_FASTCALL | METH_KEYWORDS, attachment_read_doc},
    {"read_into", (PyCFunction)(void (*)(void))attachment_read_into,
     METH_FASTCALL | METH_KEYWORDS, attachment_read_into_doc},
    {"write", (PyCFunction)(void (*)(void))attachment_write,
     METH_FASTCALL | METH_KEYWORDS, attachment_write_doc},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef attachment_getset[] = {
    {"address", (getter)attachment_get_address, NULL,
     "The mapping's address (0 once detached).", NULL},
    {"size", (getter)attachment_get_size, NULL,
     "The mapping's size in bytes (0 once detached).", NULL},
    {"detached", (getter)attachment_get_detached, NULL,
     "True once the mapping is detached.", NULL},
    {"readonly", (getter)attachment_get_readonly, NULL,
     "True for a SHM_RDONLY attachment.", NULL},
    {"shmid", (getter)attachment_get_shmid, NULL,
     "The id of the attached segment.", NULL},
    {"exports", (getter)attachment_get_exports, NULL,
     "The number of buffer views of the mapping that are alive.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef attachment_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(AttachmentObject, weakreflist),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

PyDoc_STRVAR(
    attachment_doc,
    "A shmat(2) mapping of a shared memory segment, exported through the\n"
    "buffer protocol: memoryview(a) and numpy.frombuffer(a) are zero-copy.\n"
    "The mapping lives as long as any view of it; it is detached when the\n"
    "last reference goes, or by detach() when no view is left.");

static PyType_Slot attachment_slots[] = {
    {Py_tp_dealloc, attachment_dealloc},
    {Py_tp_traverse, attachment_traverse},
    {Py_tp_repr, attachment_repr},
    {Py_tp_methods, attachment_methods},
    {Py_tp_getset, attachment_getset},
    {Py_tp_members, attachment_members},
    {Py_tp_doc, (void *)attachment_doc},
    {Py_bf_getbuffer, attachment_getbuffer},
    {Py_bf_releasebuffer, attachment_releasebuffer},
    {0, NULL},
};

static PyType_Spec attachment_spec = {
    .name = "sysvipc._sysvipc.Attachment",
    .basicsize = sizeof(AttachmentObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = attachment_slots,
};

/* ------------------------------------------------------------------------ */
/* Shared memory: SharedMemoryBase, the buffer-exporting handle              */
/* ------------------------------------------------------------------------ */

/*
 * sysvipc.SharedMemory derives from this type, which gives it the buffer
 * protocol on every Python version (a Python-level __buffer__ needs 3.12).
 * Its views are the Attachment's: getbuffer forwards, so every view holds a
 * reference to the Attachment, not to the handle.  Closing the handle drops
 * its own reference (unless bare references may use it: see handle_close);
 * the mapping goes when the last view does.
 */
typedef struct {
    PyObject_HEAD
    PyObject *attachment; // an Attachment, or NULL
    int closed;
    // Set once a buffer was exported through the handle itself: from then
    // on some consumer may keep a bare reference to the handle and use the
    // address without holding an export (numpy's ndarray(buffer=shm)).
    int exported;
} HandleObject;

static int
handle_getbuffer(HandleObject *self, Py_buffer *view, int flags)
{
    if (self->attachment == NULL || self->closed) {
        view->obj = NULL;
        PyErr_SetString(PyExc_ValueError,
                        "operation on a closed shared memory segment");
        return -1;
    }
    self->exported = 1;
    return PyObject_GetBuffer(self->attachment, view, flags);
}

PyDoc_STRVAR(
    handle_close_doc,
    "_close_mapping($self, /)\n--\n\n"
    "Close the handle's hold on the mapping (see SharedMemory.close).");

/*
 * Closing a handle ends it: it exports nothing more and its methods raise.
 * Its mapping goes with the last view, since every view holds the
 * Attachment, with one exception: a handle that exported a buffer itself
 * may also be held by bare references that use the address without an
 * export (numpy's ndarray(buffer=shm) keeps only the handle).  Such a
 * handle keeps its Attachment, and so the real mapping, until the handle
 * itself is collected: nothing ever swaps memory under a live reference.
 */
static PyObject *
handle_close(HandleObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closed) {
        Py_RETURN_NONE;
    }
    self->closed = 1;
    if (!self->exported) {
        Py_CLEAR(self->attachment); // may detach right now
    }
    Py_RETURN_NONE;
}

static PyMethodDef handle_methods[] = {
    {"_close_mapping", (PyCFunction)handle_close, METH_NOARGS,
     handle_close_doc},
    {NULL, NULL, 0, NULL},
};

/* Never called (the views belong to the Attachment), but its presence makes
 * numpy.frombuffer keep a memoryview, hence an export, instead of a bare
 * reference to the handle. */
static void
handle_releasebuffer(HandleObject *self, Py_buffer *view)
{
    (void)self;
    (void)view;
}

static int
handle_traverse(HandleObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->attachment);
    return 0;
}

/*
 * No tp_clear: the Attachment references nothing, so the handle's edge to
 * it is never part of a cycle, and it must outlive every object that can
 * still reach the handle.  It goes in dealloc.
 */
static void
handle_dealloc(HandleObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->attachment); // detaches if no view is left
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *
handle_get_attachment(HandleObject *self, void *Py_UNUSED(c))
{
    if (self->attachment == NULL || self->closed) {
        Py_RETURN_NONE;
    }
    return Py_NewRef(self->attachment);
}

/* Set once, never deleted: handle_getbuffer and close rely on it. */
static int
handle_set_attachment(HandleObject *self, PyObject *value, void *Py_UNUSED(c))
{
    if (value == NULL || self->closed || self->attachment != NULL) {
        PyErr_SetString(PyExc_AttributeError,
                        "_attachment is set once, before the handle is used");
        return -1;
    }
    module_state *st = get_state_by_type(Py_TYPE(self));
    if (st == NULL) {
        return -1;
    }
    if (!PyObject_TypeCheck(value, st->AttachmentType)) {
        PyErr_Format(PyExc_TypeError,
                     "_attachment must be an Attachment, "
                     "not %.100s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    Py_XSETREF(self->attachment, Py_NewRef(value));
    return 0;
}

static PyGetSetDef handle_getset[] = {
    {"_attachment", (getter)handle_get_attachment,
     (setter)handle_set_attachment,
     "The Attachment whose mapping this handle exports (None: closed).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot handle_slots[] = {
    {Py_tp_dealloc, handle_dealloc},
    {Py_tp_traverse, handle_traverse},
    {Py_tp_getset, handle_getset},
    {Py_tp_methods, handle_methods},
    {Py_tp_doc, (void *)"Base of sysvipc.SharedMemory: exports its "
                        "Attachment's mapping through the buffer protocol."},
    {Py_bf_getbuffer, handle_getbuffer},
    {Py_bf_releasebuffer, handle_releasebuffer},
    {0, NULL},
};

static PyType_Spec handle_spec = {
    .name = "sysvipc._sysvipc.SharedMemoryBase",
    .basicsize = sizeof(HandleObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = handle_slots,
};

/* ------------------------------------------------------------------------ */
/* Shared memory: the calls                                                  */
/* ------------------------------------------------------------------------ */

#define SHMGET_FLAGS                                                     \
    (IPC_CREAT | IPC_EXCL | SHM_HUGETLB | SHM_NORESERVE | SHM_HUGE_2MB | \
     SHM_HUGE_1GB)

/* A huge-page segment without a reservation gets SIGBUS at the first touch
 * when no huge page is free: refuse the combination instead. */
static int
check_hugetlb_reserve(int flags)
{
    if ((flags & SHM_HUGETLB) && (flags & SHM_NORESERVE)) {
        PyErr_SetString(PyExc_ValueError,
                        "shmget(): SHM_HUGETLB with SHM_NORESERVE can crash "
                        "the process (SIGBUS) when no huge page is free");
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(
    shmget_doc,
    "shmget(key, size=0, flags=0, mode=0o600)\n--\n\n"
    "Return the id of the shared memory segment for key (shmget(2)).  size "
    "may\n"
    "be 0 when opening an existing segment.  flags: IPC_CREAT, IPC_EXCL,\n"
    "SHM_HUGETLB (with SHM_HUGE_2MB or SHM_HUGE_1GB), SHM_NORESERVE.\n"
    "New segments are zero-filled by the kernel.");

static PyObject *
sysvipc_shmget(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    static const char *const names[] = {"key", "size", "flags", "mode"};
    PyObject *a[4];
    key_t key;
    unsigned long long size = 0;
    int flags, mode;
    if (parse_args("shmget", args, nargs, kwnames, names, 4, 4, 1, a) < 0 ||
        to_key(a[0], &key) < 0 ||
        (a[1] != NULL && to_ullong(a[1], "size", PY_SSIZE_T_MAX, &size) < 0) ||
        opt_int(a[2], "flags", INT_MIN, INT_MAX, 0, &flags) < 0 ||
        check_flags(flags, SHMGET_FLAGS, "shmget") < 0 ||
        check_hugetlb_reserve(flags) < 0 ||
        opt_int(a[3], "mode", 0, 0777, 0600, &mode) < 0) {
        return NULL;
    }
    int id = shmget(key, (size_t)size, flags | mode);
    if (id < 0) {
        return raise_errno_key(get_state(module), errno, "shmget", key);
    }
    return PyLong_FromLong(id);
}

PyDoc_STRVAR(
    shmat_doc,
    "shmat(shmid, flags=0)\n--\n\n"
    "Attach the segment (shmat(2)) at an address the kernel chooses and\n"
    "return an Attachment.  flags: SHM_RDONLY, SHM_EXEC.");

static PyObject *
sysvipc_shmat(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames)
{
    static const char *const names[] = {"shmid", "flags"};
    PyObject *a[2];
    module_state *st = get_state(module);
    int shmid, flags;
    if (parse_args("shmat", args, nargs, kwnames, names, 2, 2, 1, a) < 0 ||
        to_id(a[0], "shmid", &shmid) < 0 ||
        opt_int(a[1], "flags", INT_MIN, INT_MAX, 0, &flags) < 0 ||
        check_flags(flags, SHM_RDONLY | SHM_EXEC, "shmat") < 0) {
        return NULL;
    }
    // Allocate first, so that a failure later never leaks a mapping.
    AttachmentObject *self =
        PyObject_GC_New(AttachmentObject, st->AttachmentType);
    if (self == NULL) {
        return NULL;
    }
    self->addr = NULL;
    self->size = 0;
    self->exports = 0;
    self->copies = 0;
    self->copies_generation = fork_generation;
    self->shmid = shmid;
    self->readonly = (flags & SHM_RDONLY) != 0;
    self->placeholder = NULL;
    self->placeholder_size = 0;
    self->weakreflist = NULL;
    PyObject_GC_Track(self);

    void *addr = shmat(shmid, NULL, flags);
    if (addr == (void *)-1) {
        int err = errno;
        Py_DECREF(self);
        return raise_errno(st, err, "shmat", shmid);
    }
    // The size, which cannot change once the segment exists.  Attaching
    // needed read permission, which is all IPC_STAT needs.
    struct shmid_ds ds;
    if (shmctl(shmid, IPC_STAT, &ds) < 0) {
        int err = errno;
        shmdt(addr);
        Py_DECREF(self);
        return raise_errno(st, err, "shmctl", shmid);
    }
    if (ds.shm_segsz > (size_t)PY_SSIZE_T_MAX) {
        shmdt(addr);
        Py_DECREF(self);
        PyErr_SetString(PyExc_OverflowError, "segment too large to map");
        return NULL;
    }
    self->addr = addr;
    self->size = (Py_ssize_t)ds.shm_segsz;
    return (PyObject *)self;
}

PyDoc_STRVAR(
    shmdt_doc,
    "shmdt(attachment, /)\n--\n\n"
    "Detach an Attachment (shmdt(2)); the same as attachment.detach().");

static PyObject *
sysvipc_shmdt(PyObject *module, PyObject *arg)
{
    module_state *st = get_state(module);
    if (!PyObject_TypeCheck(arg, st->AttachmentType)) {
        PyErr_Format(PyExc_TypeError,
                     "shmdt() takes an Attachment from shmat(), not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    return attachment_detach((AttachmentObject *)arg, NULL);
}

PyDoc_STRVAR(
    shmctl_doc,
    "shmctl(shmid, cmd, arg=None)\n--\n\n"
    "shmctl(2).  IPC_STAT, SHM_STAT, SHM_STAT_ANY: the shmid_ds fields\n"
    "(SHM_STAT*: (shmid, fields)).  IPC_SET: arg is (uid, gid, mode), None\n"
    "for unchanged.  IPC_RMID: mark for destruction at the last detach.\n"
    "SHM_LOCK, SHM_UNLOCK.  IPC_INFO: (index, shminfo fields); SHM_INFO:\n"
    "(index, shm_info fields).");

static PyObject *
sysvipc_shmctl(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    static const char *const names[] = {"shmid", "cmd", "arg"};
    PyObject *a[3];
    module_state *st = get_state(module);
    int shmid, cmd, rc, err;
    if (parse_args("shmctl", args, nargs, kwnames, names, 3, 3, 2, a) < 0 ||
        to_id(a[0], "shmid", &shmid) < 0 ||
        to_int(a[1], "cmd", INT_MIN, INT_MAX, &cmd) < 0) {
        return NULL;
    }
    struct shmid_ds ds;
    memset(&ds, 0, sizeof(ds));
    switch (cmd) {
    case IPC_STAT:
#ifdef SHM_STAT
    case SHM_STAT:
#endif
#ifdef SHM_STAT_ANY
    case SHM_STAT_ANY:
#endif
        rc = shmctl(shmid, cmd, &ds);
        if (rc < 0) {
            return raise_errno(st, errno, "shmctl", shmid);
        }
        if (cmd == IPC_STAT) {
            return build_shmid_ds(&ds);
        }
        return Py_BuildValue("(iN)", rc, build_shmid_ds(&ds));
    case IPC_SET:
        if (a[2] == NULL) {
            PyErr_SetString(PyExc_TypeError,
                            "shmctl(IPC_SET) needs arg=(uid, gid, mode)");
            return NULL;
        }
        if (shm_stat_for_set(shmid, &ds) < 0) {
            return raise_errno(st, errno, "shmctl", shmid);
        }
        if (apply_perm_changes(a[2], 3, &ds.shm_perm, NULL) < 0) {
            return NULL;
        }
        if (shmctl(shmid, IPC_SET, &ds) < 0) {
            return raise_errno(st, errno, "shmctl", shmid);
        }
        Py_RETURN_NONE;
    case IPC_RMID:
    case SHM_LOCK:
    case SHM_UNLOCK:
        Py_BEGIN_ALLOW_THREADS
        rc = shmctl(shmid, cmd, NULL);
        err = errno;
        Py_END_ALLOW_THREADS
        if (rc < 0) {
            return raise_errno(st, err, "shmctl", shmid);
        }
        Py_RETURN_NONE;
    case IPC_INFO: {
        struct shminfo info;
        memset(&info, 0, sizeof(info));
        rc = shmctl(shmid, IPC_INFO, (struct shmid_ds *)(void *)&info);
        if (rc < 0) {
            return raise_errno(st, errno, "shmctl", shmid);
        }
        return Py_BuildValue("(iN)", rc, build_shminfo(&info));
    }
#ifdef SHM_INFO
    case SHM_INFO: {
        struct shm_info info;
        memset(&info, 0, sizeof(info));
        rc = shmctl(shmid, SHM_INFO, (struct shmid_ds *)(void *)&info);
        if (rc < 0) {
            return raise_errno(st, errno, "shmctl", shmid);
        }
        return Py_BuildValue("(iN)", rc, build_shm_info(&info));
    }
#endif
    default:
        PyErr_Format(PyExc_ValueError, "shmctl(): unknown command %d", cmd);
        return NULL;
    }
}

/* ------------------------------------------------------------------------ */
/* Module                                                                    */
/* ------------------------------------------------------------------------ */

#define FASTCALL_KW(f) \
    (PyCFunction)(void (*)(void))(f), METH_FASTCALL | METH_KEYWORDS

static PyMethodDef sysvipc_methods[] = {
    {"ftok", (PyCFunction)(void (*)(void))sysvipc_ftok, METH_FASTCALL,
     ftok_doc},
    {"_removed_error", (PyCFunction)(void (*)(void))sysvipc_removed_error,
     METH_FASTCALL, removed_error_doc},
    {"canonical_key", (PyCFunction)sysvipc_canonical_key, METH_O,
     canonical_key_doc},
    {"msgget", FASTCALL_KW(sysvipc_msgget), msgget_doc},
    {"msgsnd", FASTCALL_KW(sysvipc_msgsnd), msgsnd_doc},
    {"msgrcv", FASTCALL_KW(sysvipc_msgrcv), msgrcv_doc},
    {"msgrcv_into", FASTCALL_KW(sysvipc_msgrcv_into), msgrcv_into_doc},
    {"msgctl", FASTCALL_KW(sysvipc_msgctl), msgctl_doc},
    {"semget", FASTCALL_KW(sysvipc_semget), semget_doc},
    {"semop", FASTCALL_KW(sysvipc_semop), semop_doc},
    {"semop1", FASTCALL_KW(sysvipc_semop1), semop1_doc},
    {"semctl", FASTCALL_KW(sysvipc_semctl), semctl_doc},
    {"shmget", FASTCALL_KW(sysvipc_shmget), shmget_doc},
    {"shmat", FASTCALL_KW(sysvipc_shmat), shmat_doc},
    {"shmdt", (PyCFunction)sysvipc_shmdt, METH_O, shmdt_doc},
    {"shmctl", FASTCALL_KW(sysvipc_shmctl), shmctl_doc},
    {NULL, NULL, 0, NULL},
};

/* The module's integer constants; the #ifdefs keep old headers building. */
#define CONSTANT(name) {#name, (long)(name)}
static const struct {
    const char *name;
    long value;
} int_constants[] = {
    CONSTANT(IPC_CREAT),    CONSTANT(IPC_EXCL),      CONSTANT(IPC_NOWAIT),
    CONSTANT(IPC_PRIVATE),  CONSTANT(IPC_RMID),      CONSTANT(IPC_SET),
    CONSTANT(IPC_STAT),
#ifdef IPC_INFO
    CONSTANT(IPC_INFO),
#endif
    CONSTANT(MSG_NOERROR),
#ifdef MSG_EXCEPT
    CONSTANT(MSG_EXCEPT),
#endif
#ifdef MSG_COPY
    CONSTANT(MSG_COPY),
#endif
#ifdef MSG_STAT
    CONSTANT(MSG_STAT),
#endif
#ifdef MSG_INFO
    CONSTANT(MSG_INFO),
#endif
#ifdef MSG_STAT_ANY
    CONSTANT(MSG_STAT_ANY),
#endif
    CONSTANT(SEM_UNDO),     CONSTANT(GETPID),        CONSTANT(GETVAL),
    CONSTANT(GETALL),       CONSTANT(GETNCNT),       CONSTANT(GETZCNT),
    CONSTANT(SETVAL),       CONSTANT(SETALL),
#ifdef SEM_STAT
    CONSTANT(SEM_STAT),
#endif
#ifdef SEM_INFO
    CONSTANT(SEM_INFO),
#endif
#ifdef SEM_STAT_ANY
    CONSTANT(SEM_STAT_ANY),
#endif
    CONSTANT(SEMVMX),       CONSTANT(SHM_RDONLY),    CONSTANT(SHM_RND),
    CONSTANT(SHM_REMAP),    CONSTANT(SHM_EXEC),      CONSTANT(SHM_LOCK),
    CONSTANT(SHM_UNLOCK),
#ifdef SHM_STAT
    CONSTANT(SHM_STAT),
#endif
#ifdef SHM_INFO
    CONSTANT(SHM_INFO),
#endif
#ifdef SHM_STAT_ANY
    CONSTANT(SHM_STAT_ANY),
#endif
#ifdef SHM_DEST
    CONSTANT(SHM_DEST),
#endif
#ifdef SHM_LOCKED
    CONSTANT(SHM_LOCKED),
#endif
    CONSTANT(SHM_HUGETLB),  CONSTANT(SHM_NORESERVE), CONSTANT(SHM_HUGE_SHIFT),
    CONSTANT(SHM_HUGE_2MB), CONSTANT(SHM_HUGE_1GB),  CONSTANT(SHM_R),
    CONSTANT(SHM_W),        CONSTANT(KEY_MIN),       CONSTANT(KEY_MAX),
};
#undef CONSTANT

static int
add_int_constants(PyObject *m)
{
    for (size_t i = 0; i < sizeof(int_constants) / sizeof(int_constants[0]);
         i++) {
        if (PyModule_AddIntConstant(m, int_constants[i].name,
                                    int_constants[i].value) < 0) {
            return -1;
        }
    }
    // SHMLBA is a function call on some architectures: set at run time.
    if (PyModule_AddIntConstant(m, "SHMLBA", (long)SHMLBA) < 0 ||
        PyModule_AddIntConstant(m, "PAGE_SIZE", sysconf(_SC_PAGESIZE)) < 0 ||
        PyModule_AddIntConstant(m, "WAKEUP_SIGNAL", wakeup_signal()) < 0) {
        return -1;
    }
    return 0;
}

static int
sysvipc_exec(PyObject *m)
{
    module_state *st = get_state(m);

    // Process state reset in forked children (pthread_atfork): set up
    // before any copy or timed wait can start.
    pthread_once(&watchdog_once, watchdog_setup);

    st->IdentifierRemovedError = PyErr_NewExceptionWithDoc(
        "sysvipc.IdentifierRemovedError",
        "The IPC object was removed while in use (errno EIDRM).",
        PyExc_OSError, NULL);
    if (st->IdentifierRemovedError == NULL ||
        PyModule_AddObjectRef(m, "IdentifierRemovedError",
                              st->IdentifierRemovedError) < 0) {
        return -1;
    }
    st->AttachmentType =
        (PyTypeObject *)PyType_FromModuleAndSpec(m, &attachment_spec, NULL);
    if (st->AttachmentType == NULL ||
        PyModule_AddType(m, st->AttachmentType) < 0) {
        return -1;
    }
    st->MessageQueueBaseType =
        (PyTypeObject *)PyType_FromModuleAndSpec(m, &mq_spec, NULL);
    if (st->MessageQueueBaseType == NULL ||
        PyModule_AddType(m, st->MessageQueueBaseType) < 0) {
        return -1;
    }
    st->SemaphoreSetBaseType =
        (PyTypeObject *)PyType_FromModuleAndSpec(m, &semset_spec, NULL);
    if (st->SemaphoreSetBaseType == NULL ||
        PyModule_AddType(m, st->SemaphoreSetBaseType) < 0) {
        return -1;
    }
    st->SemaphoreBaseType =
        (PyTypeObject *)PyType_FromModuleAndSpec(m, &sem_core_spec, NULL);
    if (st->SemaphoreBaseType == NULL ||
        PyModule_AddType(m, st->SemaphoreBaseType) < 0) {
        return -1;
    }
    st->HandleType =
        (PyTypeObject *)PyType_FromModuleAndSpec(m, &handle_spec, NULL);
    if (st->HandleType == NULL || PyModule_AddType(m, st->HandleType) < 0) {
        return -1;
    }
    st->MessageType = (PyTypeObject *)PyType_FromModuleAndSpec(
        m, &message_spec, (PyObject *)&PyTuple_Type);
    if (st->MessageType == NULL ||
        PyModule_AddObjectRef(m, "Message", (PyObject *)st->MessageType) < 0) {
        return -1;
    }
    // An immutable type refuses setattr: fill its dict before first use.
    PyObject *match_args = Py_BuildValue("(ss)", "data", "type");
    if (match_args == NULL ||
        PyDict_SetItemString(st->MessageType->tp_dict, "__match_args__",
                             match_args) < 0) {
        Py_XDECREF(match_args);
        return -1;
    }
    Py_DECREF(match_args);
    PyType_Modified(st->MessageType);
    return add_int_constants(m);
}

static int
sysvipc_traverse(PyObject *m, visitproc visit, void *arg)
{
    module_state *st = get_state(m);
    Py_VISIT(st->IdentifierRemovedError);
    Py_VISIT(st->AttachmentType);
    Py_VISIT(st->HandleType);
    Py_VISIT(st->MessageType);
    Py_VISIT(st->MessageQueueBaseType);
    Py_VISIT(st->SemaphoreSetBaseType);
    Py_VISIT(st->SemaphoreBaseType);
    return 0;
}

static int
sysvipc_clear(PyObject *m)
{
    module_state *st = get_state(m);
    Py_CLEAR(st->IdentifierRemovedError);
    Py_CLEAR(st->AttachmentType);
    Py_CLEAR(st->HandleType);
    Py_CLEAR(st->MessageType);
    Py_CLEAR(st->MessageQueueBaseType);
    Py_CLEAR(st->SemaphoreSetBaseType);
    Py_CLEAR(st->SemaphoreBaseType);
    Py_CLEAR(st->receive_reserve);
    return 0;
}

static void
sysvipc_free(void *m)
{
    sysvipc_clear((PyObject *)m);
}

static PyModuleDef_Slot sysvipc_slots[] = {
    {Py_mod_exec, sysvipc_exec},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    // Py_mod_gil is left at its default: the GIL stays on (free-threaded
    // builds re-enable it) until Attachment's export count is protected.
    {0, NULL},
};

PyDoc_STRVAR(
    module_doc,
    "The C core of sysvipc: one function per System V IPC syscall.\n"
    "Use sysvipc.lowlevel (structured results) or the classes in sysvipc.");

static struct PyModuleDef sysvipc_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "sysvipc._sysvipc",
    .m_doc = module_doc,
    .m_size = sizeof(module_state),
    .m_methods = sysvipc_methods,
    .m_slots = sysvipc_slots,
    .m_traverse = sysvipc_traverse,
    .m_clear = sysvipc_clear,
    .m_free = sysvipc_free,
};

PyMODINIT_FUNC
PyInit__sysvipc(void)
{
    return PyModuleDef_Init(&sysvipc_module);
}
