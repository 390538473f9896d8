/* msg_peer.c: a C program at the other end of a sysvipc.MessageQueue.
 *
 *   msg_peer send MSQID TYPE:SIZE...  send one message per argument
 *   msg_peer recv MSQID COUNT         receive COUNT messages (any type)
 *   msg_peer duplex MSQID COUNT MAX   at the same time: a thread sends COUNT
 *                                     messages of type 2 (message n has
 *                                     n % (MAX + 1) bytes) and the main thread
 *                                     receives COUNT messages of type 1
 *
 * The bytes of a message are pattern(type, n): byte i is (7 * i + type + n)
 * mod 256, where n is 0 for "send" and the message's number (0, 1, 2, ...)
 * for "duplex".  The Python side builds the same bytes and compares.  Each
 * message received is printed as one line "TYPE SIZE HEX".
 *
 * Build: cc -O2 -Wall -pthread -o msg_peer msg_peer.c
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>
#include <unistd.h>

/* What msgsnd and msgrcv move: a long type, then the bytes.  Python's
 * Message.type is mtype; Message.data is exactly the msgsz bytes of mtext. */
struct message {
    long mtype;
    char mtext[]; /* flexible array member: size chosen at run time */
};

static int msqid;
static size_t msgmax;

static void
die(const char *what)
{
    perror(what);
    exit(1);
}

/* The largest message the kernel takes, read at run time. */
static size_t
read_msgmax(void)
{
    unsigned long value = 8192;
    FILE *f = fopen("/proc/sys/kernel/msgmax", "r");
    if (f != NULL) {
        if (fscanf(f, "%lu", &value) != 1)
            value = 8192;
        fclose(f);
    }
    return value;
}

static struct message *
new_message(void)
{
    struct message *m = malloc(sizeof(struct message) + msgmax);
    if (m == NULL)
        die("malloc");
    return m;
}

static void
fill(struct message *m, long type, size_t size, long n)
{
    m->mtype = type;
    for (size_t i = 0; i < size; i++)
        m->mtext[i] =
            (char)((7 * i + (unsigned long)type + (unsigned long)n) & 0xff);
}

static void
send_message(struct message *m, long type, size_t size, long n)
{
    fill(m, type, size, n);
    if (msgsnd(msqid, m, size, 0) == -1) /* size counts mtext only */
        die("msgsnd");
}

static void
receive_and_print(struct message *m, long type)
{
    ssize_t size = msgrcv(msqid, m, msgmax, type, 0);
    if (size == -1)
        die("msgrcv");
    printf("%ld %zd ", m->mtype, size);
    for (ssize_t i = 0; i < size; i++)
        printf("%02x", (unsigned char)m->mtext[i]);
    printf("\n");
}

static long count, max_size;

static void *
sender(void *unused)
{
    struct message *m = new_message();
    (void)unused;
    for (long n = 0; n < count; n++)
        send_message(m, 2, (size_t)(n % (max_size + 1)), n);
    free(m);
    return NULL;
}

int
main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: msg_peer send|recv|duplex MSQID ...\n");
        return 2;
    }
    alarm(20); /* never outlive a test that went wrong */
    msqid = atoi(argv[2]);
    msgmax = read_msgmax();
    struct message *m = new_message();

    if (strcmp(argv[1], "send") == 0) {
        for (int a = 3; a < argc; a++) {
            long type;
            size_t size;
            if (sscanf(argv[a], "%ld:%zu", &type, &size) != 2 ||
                size > msgmax) {
                fprintf(stderr, "bad TYPE:SIZE %s\n", argv[a]);
                return 2;
            }
            send_message(m, type, size, 0);
        }
    }
    else if (strcmp(argv[1], "recv") == 0) {
        for (long n = atol(argv[3]); n > 0; n--)
            receive_and_print(m, 0);
    }
    else if (strcmp(argv[1], "duplex") == 0 && argc == 5) {
        pthread_t thread;
        count = atol(argv[3]);
        max_size = atol(argv[4]);
        if (pthread_create(&thread, NULL, sender, NULL) != 0)
            die("pthread_create");
        for (long n = 0; n < count; n++)
            receive_and_print(m, 1);
        pthread_join(thread, NULL);
    }
    else {
        fprintf(stderr, "unknown command %s\n", argv[1]);
        return 2;
    }
    free(m);
    return fflush(stdout) == 0 ? 0 : 1;
}
