/*
 * bench_c: the benchmark workloads in plain C, the physical limit the
 * Python backends are compared with.  benchmarks/run.py compiles it with
 * `cc -O2` and runs it once per (family, repetition) in a fresh process.
 *
 *   bench_c ROWS PLACEMENT CPU0 CPU1 TARGET_NS WARM_NS SHM_BYTES WAIT_NS
 *           LAT_ITERS LAT_DELAY_NS
 *
 * ROWS is a comma-separated list of row ids (see benchmarks/harness.py).
 * Prints one JSON object: {"rows": {"<row id>": {raw numbers}}}.
 *
 * Method, as in the Python workers: warm up with batches of 1, 2, 4...
 * operations until WARM_NS has passed, then time one batch sized to last
 * TARGET_NS.  Two-process workloads fork a peer driven through two pipes
 * (a command: how many operations; a reply: a CLOCK_MONOTONIC stamp), pinned
 * to CPU0 (PLACEMENT "same") or CPU1 ("spread").  Every object is created
 * with IPC_PRIVATE and removed on every exit path, including SIGINT/SIGTERM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_OPS 200000000LL
#define MSG_MAX 65536

/* ---- configuration ----------------------------------------------------- */

static int spread;
static int cpu0, cpu1;
static int64_t target_ns, warm_ns, wait_ns, lat_delay_ns;
static long lat_iters;
static size_t shm_bytes;

/* ---- cleanup: every object this process made, removed on any exit ---- */

static volatile sig_atomic_t n_msq, n_sem, n_shm;
#define MAX_IDS 16
static int msq_ids[MAX_IDS], sem_ids[MAX_IDS], shm_ids[MAX_IDS];
static volatile pid_t child_pid;
static int is_child;

static void
cleanup(void)
{
    if (is_child) {
        return;
    }
    if (child_pid > 0) {
        kill(child_pid, SIGKILL);
        waitpid(child_pid, NULL, 0);
        child_pid = 0;
    }
    for (int i = 0; i < n_msq; i++) {
        if (msq_ids[i] >= 0) {
            msgctl(msq_ids[i], IPC_RMID, NULL);
            msq_ids[i] = -1;
        }
    }
    for (int i = 0; i < n_sem; i++) {
        if (sem_ids[i] >= 0) {
            semctl(sem_ids[i], 0, IPC_RMID);
            sem_ids[i] = -1;
        }
    }
    for (int i = 0; i < n_shm; i++) {
        if (shm_ids[i] >= 0) {
            shmctl(shm_ids[i], IPC_RMID, NULL);
            shm_ids[i] = -1;
        }
    }
}

static void
on_fatal_signal(int signo)
{
    cleanup(); /* only syscalls: async-signal-safe */
    signal(signo, SIG_DFL);
    raise(signo);
}

static void
die(const char *what)
{
    int e = errno;
    fprintf(stderr, "bench_c: %s: %s\n", what, strerror(e));
    cleanup();
    exit(2);
}

/* Note an object in $BENCH_LEDGER, so that run.py can remove it should
 * this process be killed (never called inside a timed loop). */
static void
ledger(const char *kind, int id)
{
    const char *path = getenv("BENCH_LEDGER");
    if (path && *path) {
        FILE *f = fopen(path, "a");
        if (f) {
            fprintf(f, "%s %d\n", kind, id);
            fclose(f);
        }
    }
}

/* Remember an id in the first free slot (a removed object frees its slot). */
static void
remember(int *ids, volatile sig_atomic_t *n, int id)
{
    for (int i = 0; i < *n; i++) {
        if (ids[i] < 0) {
            ids[i] = id;
            return;
        }
    }
    if (*n >= MAX_IDS) {
        errno = ENOSPC;
        die("too many objects at once");
    }
    ids[*n] = id;
    *n = *n + 1;
}

static int
new_msq(void)
{
    int id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    if (id < 0) {
        die("msgget");
    }
    ledger("msg", id);
    remember(msq_ids, &n_msq, id);
    return id;
}

static int
new_sem(int nsems)
{
    int id = semget(IPC_PRIVATE, nsems, IPC_CREAT | 0600);
    if (id < 0) {
        die("semget");
    }
    ledger("sem", id);
    remember(sem_ids, &n_sem, id);
    return id;
}

static void
forget(int *ids, volatile sig_atomic_t *n, int id)
{
    for (int i = 0; i < *n; i++) {
        if (ids[i] == id) {
            ids[i] = -1;
        }
    }
}

static void
rm_msq(int id)
{
    msgctl(id, IPC_RMID, NULL);
    forget(msq_ids, &n_msq, id);
}

static void
rm_sem(int id)
{
    semctl(id, 0, IPC_RMID);
    forget(sem_ids, &n_sem, id);
}

/* ---- helpers ----------------------------------------------------------- */

static inline int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof(set), &set); /* best effort */
}

static inline void
barrier(void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

struct msgbuf_big {
    long mtype;
    char mtext[MSG_MAX];
};

static struct msgbuf_big sbuf, rbuf;

/* ---- the peer process -------------------------------------------------- */

static int cmd_w = -1, res_r = -1; /* parent side */
static pid_t peer_pids[64];
static int n_peer_pids;
static int cmd_r = -1, res_w = -1; /* child side */

static void
write_i64(int fd, int64_t v)
{
    const char *p = (const char *)&v;
    size_t left = sizeof(v);
    while (left) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("write(pipe)");
        }
        p += n;
        left -= (size_t)n;
    }
}

/* Returns 0 at end of file. */
static int64_t
read_i64(int fd)
{
    int64_t v = 0;
    char *p = (char *)&v;
    size_t left = sizeof(v);
    while (left) {
        ssize_t n = read(fd, p, left);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("read(pipe)");
        }
        if (n == 0) {
            return 0;
        }
        p += n;
        left -= (size_t)n;
    }
    return v;
}

typedef void (*child_fn)(void *arg);

static void
start_peer(child_fn fn, void *arg)
{
    int a[2], b[2];
    if (pipe(a) < 0 || pipe(b) < 0) {
        die("pipe");
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        die("fork");
    }
    if (pid == 0) {
        is_child = 1;
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        close(a[1]);
        close(b[0]);
        cmd_r = a[0];
        res_w = b[1];
        pin(spread ? cpu1 : cpu0);
        fn(arg);
        _exit(0);
    }
    close(a[0]);
    close(b[1]);
    cmd_w = a[1];
    res_r = b[0];
    child_pid = pid;
    if (n_peer_pids < 64) {
        peer_pids[n_peer_pids++] = pid;
    }
}

static void
stop_peer(void)
{
    close(cmd_w); /* the child reads end of file and leaves */
    close(res_r);
    cmd_w = res_r = -1;
    if (child_pid > 0) {
        int status;
        for (int i = 0; i < 500; i++) {
            if (waitpid(child_pid, &status, WNOHANG) == child_pid) {
                child_pid = 0;
                return;
            }
            usleep(1000);
        }
        kill(child_pid, SIGKILL);
        waitpid(child_pid, NULL, 0);
        child_pid = 0;
    }
}

/* ---- calibration ------------------------------------------------------- */

typedef int64_t (*batch_fn)(int64_t n, void *arg);

struct measured {
    int64_t ops, elapsed_ns;
};

static struct measured
calibrate(batch_fn batch, void *arg)
{
    int64_t n = 1, spent = 0, last = 0;
    for (;;) {
        last = batch(n, arg);
        if (last < 1) {
            last = 1;
        }
        if (n == 1 &&
            last >= 10 * target_ns) { /* one long operation: timed once */
            struct measured once = {1, last};
            return once;
        }
        spent += last;
        if (spent >= warm_ns || n >= MAX_OPS) {
            break;
        }
        n *= 2;
    }
    double per_op = (double)last / (double)n;
    int64_t ops = (int64_t)((double)target_ns / per_op);
    if (ops < 1) {
        ops = 1;
    }
    if (ops > MAX_OPS) {
        ops = MAX_OPS;
    }
    struct measured m = {ops, batch(ops, arg)};
    return m;
}

/* ---- output ------------------------------------------------------------ */

static int rows_printed;

static void
row_begin(const char *id)
{
    printf("%s\"%s\": {", rows_printed++ ? ", " : "", id);
}

static void
print_measured(const char *id, struct measured m)
{
    row_begin(id);
    printf("\"ops\": %lld, \"elapsed_ns\": %lld}", (long long)m.ops,
           (long long)m.elapsed_ns);
    fflush(stdout);
}

/* ---- messages ---------------------------------------------------------- */

struct msgctx {
    int q;
    size_t size;
};

static void
pingpong_child(void *arg)
{
    struct msgctx *c = arg;
    int64_t n;
    while ((n = read_i64(cmd_r)) > 0) {
        for (int64_t i = 0; i < n; i++) {
            ssize_t got = msgrcv(c->q, &rbuf, c->size, 1, 0);
            if (got < 0) {
                _exit(3);
            }
            rbuf.mtype = 2;
            if (msgsnd(c->q, &rbuf, (size_t)got, 0) < 0) {
                _exit(3);
            }
        }
    }
}

static int64_t
pingpong_batch(int64_t n, void *arg)
{
    struct msgctx *c = arg;
    write_i64(cmd_w, n);
    int64_t t0 = now_ns();
    for (int64_t i = 0; i < n; i++) {
        sbuf.mtype = 1;
        if (msgsnd(c->q, &sbuf, c->size, 0) < 0) {
            die("msgsnd");
        }
        if (msgrcv(c->q, &rbuf, c->size, 2, 0) < 0) {
            die("msgrcv");
        }
    }
    return now_ns() - t0;
}

static void
stream_child(void *arg)
{
    struct msgctx *c = arg;
    int64_t n;
    while ((n = read_i64(cmd_r)) > 0) {
        for (int64_t i = 0; i < n; i++) {
            if (msgrcv(c->q, &rbuf, c->size, 0, 0) < 0) {
                _exit(3);
            }
        }
        write_i64(res_w, now_ns());
    }
}

static int64_t
stream_batch(int64_t n, void *arg)
{
    struct msgctx *c = arg;
    write_i64(cmd_w, n);
    int64_t t0 = now_ns();
    sbuf.mtype = 1;
    for (int64_t i = 0; i < n; i++) {
        if (msgsnd(c->q, &sbuf, c->size, 0) < 0) {
            die("msgsnd");
        }
    }
    return read_i64(res_r) - t0;
}

static int64_t
pair_batch(int64_t n, void *arg)
{
    struct msgctx *c = arg;
    int64_t t0 = now_ns();
    sbuf.mtype = 1;
    for (int64_t i = 0; i < n; i++) {
        if (msgsnd(c->q, &sbuf, c->size, 0) < 0) {
            die("msgsnd");
        }
        if (msgrcv(c->q, &rbuf, c->size, 0, 0) < 0) {
            die("msgrcv");
        }
    }
    return now_ns() - t0;
}

static void
run_msg(const char *id, const char *family, size_t size)
{
    struct msgctx c = {new_msq(), size};
    memset(sbuf.mtext, 'x', size);
    struct measured m;
    if (strcmp(family, "pingpong") == 0) {
        start_peer(pingpong_child, &c);
        m = calibrate(pingpong_batch, &c);
        stop_peer();
    }
    else if (strcmp(family, "stream") == 0) {
        start_peer(stream_child, &c);
        m = calibrate(stream_batch, &c);
        stop_peer();
    }
    else {
        m = calibrate(pair_batch, &c);
    }
    rm_msq(c.q);
    print_measured(id, m);
}

/* ---- semaphores -------------------------------------------------------- */

struct semctx {
    int s;
    short flags;
};

static inline void
sem1(int s, unsigned short num, short op, short flags)
{
    struct sembuf b = {num, op, flags};
    if (semop(s, &b, 1) < 0) {
        if (is_child) {
            _exit(3);
        }
        die("semop");
    }
}

static void
sem_pingpong_child(void *arg)
{
    struct semctx *c = arg;
    int64_t n;
    while ((n = read_i64(cmd_r)) > 0) {
        for (int64_t i = 0; i < n; i++) {
            sem1(c->s, 0, -1, 0);
            sem1(c->s, 1, +1, 0);
        }
    }
}

static int64_t
sem_pingpong_batch(int64_t n, void *arg)
{
    struct semctx *c = arg;
    write_i64(cmd_w, n);
    int64_t t0 = now_ns();
    for (int64_t i = 0; i < n; i++) {
        sem1(c->s, 0, +1, 0);
        sem1(c->s, 1, -1, 0);
    }
    return now_ns() - t0;
}

static int64_t
sem_uncontended_batch(int64_t n, void *arg)
{
    struct semctx *c = arg;
    int64_t t0 = now_ns();
    for (int64_t i = 0; i < n; i++) {
        sem1(c->s, 0, -1, c->flags);
        sem1(c->s, 0, +1, c->flags);
    }
    return now_ns() - t0;
}

static void
run_sem(const char *id)
{
    struct semctx c = {new_sem(2), 0};
    struct measured m;
    unsigned short zero[2] = {0, 0};
    if (semctl(c.s, 0, SETALL, zero) < 0) {
        die("semctl(SETALL)");
    }
    if (strcmp(id, "sem_pingpong") == 0) {
        start_peer(sem_pingpong_child, &c);
        m = calibrate(sem_pingpong_batch, &c);
        stop_peer();
    }
    else {
        c.flags = strcmp(id, "sem_uncontended_undo") == 0 ? SEM_UNDO : 0;
        sem1(c.s, 0, +1, 0);
        m = calibrate(sem_uncontended_batch, &c);
    }
    rm_sem(c.s);
    print_measured(id, m);
}

/* ---- shared memory ----------------------------------------------------- */

struct copyctx {
    void *to;
    const void *from;
    size_t n;
};

static int64_t
copy_batch(int64_t n, void *arg)
{
    struct copyctx *c = arg;
    int64_t t0 = now_ns();
    for (int64_t i = 0; i < n; i++) {
        memcpy(c->to, c->from, c->n);
        barrier(c->to);
    }
    return now_ns() - t0;
}

static void
run_shm_copy(char **ids, int nids)
{
    int id = shmget(IPC_PRIVATE, shm_bytes, IPC_CREAT | 0600);
    if (id < 0) {
        die("shmget");
    }
    remember(shm_ids, &n_shm, id);
    ledger("shm", id);
    char *seg = shmat(id, NULL, 0);
    if (seg == (void *)-1) {
        die("shmat");
    }
    /* Marked now: it goes at the detach (or the exit) whatever happens. */
    shmctl(id, IPC_RMID, NULL);
    /* One private buffer: the source of the writes and the destination of
     * the reads, as in the Python workers. */
    char *buf = malloc(shm_bytes);
    if (!buf) {
        die("malloc");
    }
    memset(buf, 0x5a, shm_bytes);
    memset(seg, 1, shm_bytes); /* no page faults inside the timed copies */
    for (int i = 0; i < nids; i++) {
        struct copyctx c = {0, 0, shm_bytes};
        if (strncmp(ids[i], "shm_write", 9) == 0) {
            c.to = seg, c.from = buf;
        }
        else {
            c.to = buf, c.from = seg;
        }
        struct measured m = calibrate(copy_batch, &c);
        row_begin(ids[i]);
        printf("\"ops\": %lld, \"elapsed_ns\": %lld, \"nbytes\": %zu}",
               (long long)m.ops, (long long)m.elapsed_ns, shm_bytes);
        fflush(stdout);
    }
    shmdt(seg);
    free(buf);
}

static int64_t
shm_create_batch(int64_t n, void *arg)
{
    size_t size = *(size_t *)arg;
    int64_t t0 = now_ns();
    for (int64_t i = 0; i < n; i++) {
        int id = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600);
        if (id < 0) {
            die("shmget");
        }
        void *p = shmat(id, NULL, 0);
        if (p == (void *)-1) {
            shmctl(id, IPC_RMID, NULL);
            die("shmat");
        }
        shmdt(p);
        shmctl(id, IPC_RMID, NULL);
    }
    return now_ns() - t0;
}

/* ---- timed wait -------------------------------------------------------- */

/*
 * The cheapest timed msgrcv in C: a POSIX timer created once, armed for
 * each wait and disarmed after it, whose signal (no SA_RESTART) ends the
 * msgrcv with EINTR.
 */
static timer_t wait_timer;

static void
on_timer(int signo)
{
    (void)signo;
}

static void
timer_setup(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_timer;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGRTMIN + 5, &sa, NULL);
    struct sigevent sev;
    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGRTMIN + 5;
    if (timer_create(CLOCK_MONOTONIC, &sev, &wait_timer) < 0) {
        die("timer_create");
    }
}

/* msgrcv with a timeout; returns the length, or -1 (errno ETIMEDOUT). */
static ssize_t
timed_msgrcv(int q, size_t size, int64_t timeout)
{
    struct itimerspec its = {{0, 0}, {0, 0}};
    int64_t deadline = now_ns() + timeout;
    its.it_value.tv_sec = deadline / 1000000000LL;
    its.it_value.tv_nsec = deadline % 1000000000LL;
    timer_settime(wait_timer, TIMER_ABSTIME, &its, NULL);
    ssize_t n;
    for (;;) {
        n = msgrcv(q, &rbuf, size, 0, 0);
        if (n >= 0 || errno != EINTR) {
            break;
        }
        if (now_ns() >= deadline) {
            errno = ETIMEDOUT;
            break;
        }
    }
    int e = errno;
    struct itimerspec off = {{0, 0}, {0, 0}};
    timer_settime(wait_timer, 0, &off, NULL);
    errno = e;
    return n;
}

static void
latency_child(void *arg)
{
    struct msgctx *c = arg;
    struct timespec delay = {lat_delay_ns / 1000000000LL,
                             lat_delay_ns % 1000000000LL};
    while (read_i64(cmd_r) > 0) {
        nanosleep(&delay, NULL);
        sbuf.mtype = 1;
        int64_t t = now_ns();
        memcpy(sbuf.mtext, &t, sizeof(t));
        if (msgsnd(c->q, &sbuf, c->size, 0) < 0) {
            _exit(3);
        }
    }
}

static int64_t
one_latency(struct msgctx *c)
{
    write_i64(cmd_w, 1);
    if (timed_msgrcv(c->q, c->size, 1000000000LL) < 0) {
        die("timed msgrcv");
    }
    int64_t t1 = now_ns(), t0;
    memcpy(&t0, rbuf.mtext, sizeof(t0));
    return t1 - t0;
}

static int64_t
cpu_now_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

static void
run_timed_wait(const char *id)
{
    timer_setup();
    struct msgctx c = {new_msq(), 64};
    memset(sbuf.mtext, 0, 64);
    if (strcmp(id, "timed_wait_latency") == 0) {
        start_peer(latency_child, &c);
        one_latency(&c); /* warm-up */
        row_begin(id);
        printf("\"samples_ns\": [");
        for (long i = 0; i < lat_iters; i++) {
            printf("%s%lld", i ? ", " : "", (long long)one_latency(&c));
        }
        printf("], \"ops\": %ld}", lat_iters);
        stop_peer();
    }
    else {
        timed_msgrcv(c.q, c.size, 10000000LL); /* warm-up */
        int64_t c0 = cpu_now_ns(), t0 = now_ns();
        ssize_t n = timed_msgrcv(c.q, c.size, wait_ns);
        int64_t t1 = now_ns(), c1 = cpu_now_ns();
        if (n >= 0 || errno != ETIMEDOUT) {
            die("timed msgrcv did not time out");
        }
        row_begin(id);
        printf("\"cpu_ns\": %lld, \"wall_ns\": %lld, \"overshoot_ns\": %lld}",
               (long long)(c1 - c0), (long long)(t1 - t0),
               (long long)(t1 - t0 - wait_ns));
    }
    fflush(stdout);
    rm_msq(c.q);
    timer_delete(wait_timer);
}

/* ---- main -------------------------------------------------------------- */

int
main(int argc, char **argv)
{
    if (argc != 11) {
        fprintf(stderr,
                "usage: bench_c ROWS same|spread CPU0 CPU1 TARGET_NS WARM_NS "
                "SHM_BYTES WAIT_NS LAT_ITERS LAT_DELAY_NS\n");
        return 2;
    }
    for (int i = 0; i < MAX_IDS; i++) {
        msq_ids[i] = sem_ids[i] = shm_ids[i] = -1;
    }
    signal(SIGINT, on_fatal_signal);
    signal(SIGTERM, on_fatal_signal);
    signal(SIGHUP, on_fatal_signal);
    signal(SIGPIPE, SIG_IGN);
    atexit(cleanup);

    char *rows = strdup(argv[1]);
    spread = strcmp(argv[2], "spread") == 0;
    cpu0 = atoi(argv[3]);
    cpu1 = atoi(argv[4]);
    target_ns = atoll(argv[5]);
    warm_ns = atoll(argv[6]);
    shm_bytes = (size_t)strtoull(argv[7], NULL, 10);
    wait_ns = atoll(argv[8]);
    lat_iters = atol(argv[9]);
    lat_delay_ns = atoll(argv[10]);
    pin(cpu0);

    char *ids[64];
    int nids = 0;
    for (char *tok = strtok(rows, ","); tok && nids < 64;
         tok = strtok(NULL, ",")) {
        ids[nids++] = tok;
    }
    memset(sbuf.mtext, 'x', sizeof(sbuf.mtext));

    printf("{\"rows\": {");
    int copy_rows = 0;
    char *copy_ids[8];
    for (int i = 0; i < nids; i++) {
        const char *id = ids[i];
        size_t size;
        if (sscanf(id, "msg_pingpong_%zu", &size) == 1) {
            run_msg(id, "pingpong", size);
        }
        else if (sscanf(id, "msg_stream_%zu", &size) == 1) {
            run_msg(id, "stream", size);
        }
        else if (sscanf(id, "msg_pair_%zu", &size) == 1) {
            run_msg(id, "pair", size);
        }
        else if (strncmp(id, "sem_", 4) == 0) {
            run_sem(id);
        }
        else if (strncmp(id, "shm_write_", 10) == 0 ||
                 strncmp(id, "shm_read_", 9) == 0) {
            if (copy_rows < 8) {
                copy_ids[copy_rows++] = ids[i];
            }
        }
        else if (strncmp(id, "shm_create_", 11) == 0) {
            size = strcmp(id, "shm_create_1g") == 0 ? (size_t)1 << 30
                                                    : (size_t)1 << 20;
            print_measured(id, calibrate(shm_create_batch, &size));
        }
        else if (strncmp(id, "timed_wait_", 11) == 0) {
            run_timed_wait(id);
        }
        else {
            fprintf(stderr, "bench_c: unknown row %s\n", id);
            cleanup();
            return 2;
        }
    }
    if (copy_rows) {
        run_shm_copy(copy_ids, copy_rows);
    }
    printf("}, \"peer_pids\": [");
    for (int i = 0; i < n_peer_pids; i++) {
        printf("%s%d", i ? ", " : "", (int)peer_pids[i]);
    }
    printf("]}\n");
    fflush(stdout);
    cleanup();
    return 0;
}
